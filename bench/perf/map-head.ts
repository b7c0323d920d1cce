/**
 * Why a Map is not a queue: deleting a Map's first entry leaves a hole that V8 keeps until the table is
 * rehashed, and `map.values().next()` walks over every hole to reach the new first entry. A FIFO kept in a
 * Map, whose head is read after each removal, is therefore O(removed so far) per head read. This measures it
 * apart from kvgate, for finding 3 in docs/benchmarks.md (src/policies/backlog.ts reads heads this way).
 *
 *   node bench/perf/map-head.js
 */
import { printTable } from './lib/table.js'

const rows: (string | number)[][] = []
for (const size of [1_000, 10_000, 50_000]) {
  // Drain from the front, reading the new head after each removal (a deadline sweep, a shutdown).
  const drained = new Map<string, number>()
  for (let i = 0; i < size; i += 1) drained.set(`r${i}`, i)
  let start = process.hrtime.bigint()
  for (let i = 0; i < size; i += 1) {
    drained.delete(`r${i}`)
    drained.values().next()
  }
  const drainMs = Number(process.hrtime.bigint() - start) / 1e6

  // Steady state: remove the head, read the new head, add at the tail (admission at a constant queue).
  const steady = new Map<string, number>()
  for (let i = 0; i < size; i += 1) steady.set(`s${i}`, i)
  const ops = 20_000
  let first = 0
  let next = size
  start = process.hrtime.bigint()
  for (let i = 0; i < ops; i += 1) {
    steady.delete(`s${first++}`)
    steady.values().next()
    steady.set(`s${next++}`, i)
  }
  const steadyUs = Number(process.hrtime.bigint() - start) / 1e3 / ops

  // The same with an array and a head index: what a linked list or ring buffer costs.
  const queue: string[] = []
  for (let i = 0; i < size; i += 1) queue.push(`q${i}`)
  let head = 0
  start = process.hrtime.bigint()
  for (let i = 0; i < ops; i += 1) {
    head += 1
    void queue[head]
    queue.push(`q${size + i}`)
  }
  const arrayUs = Number(process.hrtime.bigint() - start) / 1e3 / ops
  rows.push([size, drainMs, steadyUs.toFixed(2), arrayUs.toFixed(3)])
}
printTable(
  'Head of a FIFO kept in a Map',
  ['entries', 'drain from the front, ms', 'Map: pop + head + push, µs', 'array + index, µs'],
  rows,
)
