import { describe, expect, it } from 'vitest'
import { createSeededRandom, IndexedHeap, IndexedMinHeap, randomInt } from '../../src/core/index.js'
import { take } from '../policies/helpers.js'

interface Item {
  readonly deadlineAtMs: number
  readonly seq: number
  heapIndex: number
}

const byDeadline = (a: Item, b: Item): boolean =>
  a.deadlineAtMs < b.deadlineAtMs || (a.deadlineAtMs === b.deadlineAtMs && a.seq < b.seq)

describe('IndexedHeap: items that carry their own position (the admission queue by deadline)', () => {
  it('pops in deadline order (ties by arrival) under random pushes and removals from the middle', () => {
    const random = createSeededRandom(11)
    const heap = new IndexedHeap<Item>(byDeadline)
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

  it('refuses to remove an item of another heap', () => {
    const a = new IndexedHeap<Item>(byDeadline)
    const b = new IndexedHeap<Item>(byDeadline)
    const x: Item = { deadlineAtMs: 1, seq: 0, heapIndex: -1 }
    const y: Item = { deadlineAtMs: 2, seq: 1, heapIndex: -1 }
    a.push(x)
    b.push(y)
    expect(b.remove(x)).toBe(false)
    expect(a.size).toBe(1)
    expect(b.peek()).toBe(y)
  })
})

describe('IndexedMinHeap: the ordered structure behind every policy', () => {
  it('walks keys in ascending (priority, tie, key) order, lazily and after random updates', () => {
    const random = createSeededRandom(3)
    const heap = new IndexedMinHeap()
    const model = new Map<string, [number, number]>()
    for (let i = 0; i < 5_000; i++) {
      const key = `u${randomInt(random, 0, 200)}`
      if (randomInt(random, 0, 3) === 0) {
        heap.delete(key)
        model.delete(key)
      } else {
        const entry: [number, number] = [randomInt(random, 0, 50), randomInt(random, 0, 5)]
        heap.set(key, ...entry)
        model.set(key, entry)
      }
    }
    const expected = [...model.entries()]
      .sort(([ka, [pa, ta]], [kb, [pb, tb]]) => pa - pb || ta - tb || (ka < kb ? -1 : 1))
      .map(([k]) => k)
    expect(take(heap.ascending())).toEqual(expected)
    expect(take(heap.ascending(), 5)).toEqual(expected.slice(0, 5))
    expect(heap.size).toBe(model.size)
    expect(heap.peek()?.key).toBe(expected[0])
  })

  it('yields each key at most once when the heap changes during the walk', () => {
    const heap = new IndexedMinHeap()
    for (let i = 0; i < 10; i++) heap.set(`k${i}`, i, 0)
    const seen: string[] = []
    for (const key of heap.ascending()) {
      seen.push(key)
      // The consumer pushes what it just saw to the back, as VTC does after charging a user.
      heap.set(key, 100 + seen.length, 0)
    }
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`))
  })

  it('yields a key once even when it leaves and comes back during the walk', () => {
    const heap = new IndexedMinHeap()
    for (let i = 0; i < 5; i++) heap.set(`k${i}`, i, 0)
    const seen: string[] = []
    for (const key of heap.ascending()) {
      seen.push(key)
      heap.delete(key)
      heap.set(key, 100, 0) // a new entry for the same key, at the back
    }
    expect(seen).toEqual(['k0', 'k1', 'k2', 'k3', 'k4'])
  })
})
