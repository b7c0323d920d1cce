import { describe, expect, it } from 'vitest'
import { createSeededRandom, randomInt } from '../../src/core/index.js'
import { IndexedMinHeap } from '../../src/policies/indexed-heap.js'
import { take } from './helpers.js'

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
})
