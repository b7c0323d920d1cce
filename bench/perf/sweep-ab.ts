/**
 * Finding 4 (a) of docs/benchmarks.md, before and after: the deadline sweep of bench/perf/admission.js run
 * from the shipped build and from a copy whose `KvgateError` skips the stack trace for 429/499/503
 * (lib/candidate-build.ts), alternating, each in its own process. Kept for the record: the fix is in since
 * 3a10414, and on a build that has it the script says so and stops.
 *
 *   node bench/perf/sweep-ab.js [--reps 3] [--queued 10000] [--policies fifo,vtc]     (from the tsc build)
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { prepareStacklessRejectionsBuild } from './lib/candidate-build.js'
import { median } from './lib/processes.js'
import { flag, printTable } from './lib/table.js'

const reps = flag('reps', 3)
const queued = flag('queued', 10_000)
const policies = flag('policies', 'fifo,vtc')

const shipped = fileURLToPath(new URL('./admission.js', import.meta.url))
// Since 3a10414 admission builds its rejections stackless itself: then there is nothing left to compare.
const shippedErrors = readFileSync(fileURLToPath(new URL('../../src/errors/index.js', import.meta.url)), 'utf8')
if (shippedErrors.includes('captureStack')) {
  console.log('\nFinding 4(a) is applied in this build (src/errors/index.ts captureStack): nothing to compare.')
  process.exit(0)
}
const stacklessRoot = prepareStacklessRejectionsBuild()
if (stacklessRoot === undefined) throw new Error('run from the tsc build: npm run bench:perf:build')
const stackless = join(stacklessRoot, 'bench', 'perf', 'admission.js')

/** The sweep rows of one admission.js run: policy|users → ms the loop was held. */
function sweep(script: string): Map<string, number> {
  const out = execFileSync(
    process.execPath,
    [
      '--expose-gc',
      script,
      '--queued',
      `10,${queued}`,
      '--deep',
      '0',
      '--reps',
      '1',
      '--decisions',
      '50',
      '--policies',
      policies,
    ],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  )
  const rows = new Map<string, number>()
  const table = out.slice(out.indexOf('Deadline sweep'))
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim())
    if (cells.length < 6 || !/^\d/.test(cells[2] ?? '')) continue
    rows.set(`${cells[1]}|${cells[3]}`, Number((cells[4] ?? '').replace(/,/g, '')))
  }
  return rows
}

const before = new Map<string, number[]>()
const after = new Map<string, number[]>()
for (let rep = 0; rep < reps; rep += 1) {
  for (const [key, ms] of sweep(shipped)) before.set(key, [...(before.get(key) ?? []), ms])
  for (const [key, ms] of sweep(stackless)) after.set(key, [...(after.get(key) ?? []), ms])
}
const rows = [...before.keys()].map((key) => {
  const [policy = '', users = ''] = key.split('|')
  const a = median(before.get(key) ?? [])
  const b = median(after.get(key) ?? [])
  return [policy, queued, users, a, b, `${Math.round((1 - b / a) * 100)}%`]
})
printTable(
  `Deadline sweep of ${queued.toLocaleString('en-US')} queued requests, shipped vs stackless rejection errors (median of ${reps} runs each, alternating)`,
  ['policy', 'queued', 'users', 'ms held, shipped', 'ms held, stackless', 'saved'],
  rows,
)
