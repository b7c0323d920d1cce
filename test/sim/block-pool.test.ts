import { describe, expect, it } from 'vitest'
import { createBlockPool, hashBlock } from '../../src/sim/block-pool.js'

/** vLLM's BlockPool semantics: null block, LRU free queue, reverse-order frees, cache hits out of the free queue. */
describe('KV block pool', () => {
  it('reserves block 0, so usage is 1 − free / (numGpuBlocks − 1)', () => {
    const pool = createBlockPool(11, true)
    expect(pool.numFreeBlocks()).toBe(10)
    const blocks = pool.allocate(4)!
    expect(blocks).not.toContain(0)
    expect(pool.usage()).toBeCloseTo(0.4)
    expect(pool.allocate(7)).toBeNull()
    pool.free(blocks)
    expect(pool.usage()).toBe(0)
  })

  it('keeps freed blocks cached until evicted, deepest first, and a hit takes them back from the free queue', () => {
    const pool = createBlockPool(5, true) // 4 usable
    const ids = Array.from({ length: 48 }, (_, i) => i + 1)
    const hashes: number[] = []
    for (const i of [0, 1, 2]) hashes.push(hashBlock(hashes[i - 1] ?? 0, ids, i * 16, (i + 1) * 16))
    const blocks = pool.allocate(3)!
    blocks.forEach((block, i) => {
      pool.cacheBlock(block, hashes[i]!)
    })
    // Freed in reverse: the chain's tail reaches the free queue first, so it is evicted first.
    pool.free(blocks.slice().reverse())
    expect(pool.usage()).toBe(0)
    expect(pool.findCached(hashes, 3)).toEqual(blocks)

    // Two fresh allocations evict the never-cached block, then the deepest cached block.
    pool.allocate(2)
    expect(pool.findCached(hashes, 3)).toEqual(blocks.slice(0, 2))
    // A hit on the first two takes them out of the free queue: no free blocks remain.
    const hits = pool.findCached(hashes, 3)
    expect(pool.countFree(hits)).toBe(2)
    pool.touch(hits)
    expect(pool.numFreeBlocks()).toBe(0)
  })

  it('chains hashes on the parent: the same block after a different prefix does not match', () => {
    const a = Array.from({ length: 32 }, (_, i) => i)
    const b = [...a.slice(0, 16).map((x) => x + 100), ...a.slice(16)]
    const second = (ids: number[]) => hashBlock(hashBlock(0, ids, 0, 16), ids, 16, 32)
    expect(second(a)).not.toBe(second(b))
    expect(second(a)).toBe(second(a.slice()))
  })

  it('does not cache when prefix caching is off', () => {
    const pool = createBlockPool(4, false)
    const [block] = pool.allocate(1)!
    pool.cacheBlock(block!, 42)
    pool.free([block!])
    expect(pool.findCached([42], 1)).toEqual([])
  })
})
