import { describe, expect, it } from 'vitest'
import { createSeededRandom, randomInt } from '../../src/core/index.js'
import { DeadlineHeap, type HeapItem } from '../../src/admission/deadline-heap.js'

interface Item extends HeapItem {
  readonly deadlineAtMs: number
  readonly seq: number
  heapIndex: number
}

describe('admission: the deadline heap', () => {
  it('pops in deadline order (ties by arrival) under random pushes and removals from the middle', () => {
    const random = createSeededRandom(11)
    const heap = new DeadlineHeap<Item>()
    const inHeap = new Set<Item>()
    let seq = 0
    for (let step = 0; step < 20_000; step++) {
      const roll = random.next()
      if (roll < 0.5) {
        const item: Item = { deadlineAtMs: randomInt(random, 0, 500), seq: seq++, heapIndex: -1 }
        heap.push(item)
        inHeap.add(item)
      } else if (roll < 0.8 && inHeap.size > 0) {
        const victim = [...inHeap][randomInt(random, 0, inHeap.size - 1)]!
        expect(heap.remove(victim)).toBe(true)
        expect(heap.remove(victim)).toBe(false) // twice is a no-op
        inHeap.delete(victim)
      } else {
        const expected = [...inHeap].sort((a, b) => a.deadlineAtMs - b.deadlineAtMs || a.seq - b.seq)[0]
        expect(heap.pop()).toBe(expected)
        if (expected !== undefined) inHeap.delete(expected)
      }
      expect(heap.size).toBe(inHeap.size)
    }
  })
})
