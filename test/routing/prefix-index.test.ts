import { describe, expect, it } from 'vitest'
import { chainedBlockHashes, modelSeed, PrefixIndex } from '../../src/routing/index.js'

const ids = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => 1000 + offset + i)
const chain = (tokens: readonly number[], model = 'm'): number[] => chainedBlockHashes(tokens, 16, modelSeed(model))

describe('block hashes', () => {
  it('hash full blocks only, chained: a shared prefix shares hashes up to where the prompts part', () => {
    const a = chain(ids(100))
    expect(a).toHaveLength(6) // 100 tokens = 6 full blocks of 16 and a partial one, not hashed
    const b = chain([...ids(40), ...ids(60, 5000)])
    expect(b.slice(0, 2)).toEqual(a.slice(0, 2)) // tokens 0..31 shared
    expect(b[2]).not.toBe(a[2]) // block 2 holds tokens 32..47: differ from 40 on
    // Chained: the same block content after a different parent hashes apart.
    const c = chain([...ids(16, 9000), ...ids(16, 16)])
    expect(c[1]).not.toBe(a[1])
  })

  it('keep models apart and fit in an exact JS number', () => {
    const a = chain(ids(64), 'llama')
    const b = chain(ids(64), 'qwen')
    expect(a.some((h, i) => h === b[i])).toBe(false)
    for (const h of a) expect(Number.isSafeInteger(h)).toBe(true)
  })
})

describe('the prefix index', () => {
  it('finds the cached run of a prompt, as a prefix, and only on the backend it was sent to', () => {
    const index = new PrefixIndex({ maxBlocksPerBackend: 1000, ttlMs: 60_000 })
    const turn1 = chain(ids(160))
    index.touch('a', turn1, 1000, 0)
    const turn2 = chain([...ids(160), ...ids(80, 7000)])
    expect(index.cachedBlocks('a', turn2, 10)).toBe(10)
    expect(index.cachedBlocks('b', turn2, 10)).toBe(0)
    expect(index.cachedBlocks('a', chain(ids(160, 1)), 10)).toBe(0)
  })

  it("is bounded by the backend's block count and forgets the least recently used first, deepest block first", () => {
    const index = new PrefixIndex({ maxBlocksPerBackend: 1000, ttlMs: 60_000 })
    const old = chain(ids(160, 0)) // 10 blocks
    const fresh = chain(ids(160, 50_000)) // 10 more
    index.touch('a', old, 15, 0)
    index.touch('a', fresh, 15, 1)
    expect(index.sizes()['a']).toBe(15)
    // Five of the old prompt's blocks were evicted, its deepest first: its first five remain a cached prefix.
    expect(index.cachedBlocks('a', old, 2)).toBe(5)
    expect(index.cachedBlocks('a', fresh, 2)).toBe(10)
  })

  it('takes entries older than the time-to-live for evicted', () => {
    const index = new PrefixIndex({ maxBlocksPerBackend: 1000, ttlMs: 1_000 })
    const prompt = chain(ids(64))
    index.touch('a', prompt, 1000, 0)
    expect(index.cachedBlocks('a', prompt, 1_000)).toBe(4)
    expect(index.cachedBlocks('a', prompt, 1_001)).toBe(0)
  })

  it('counts held blocks apart, until every holder released them; a reset forgets residency, not holders', () => {
    const index = new PrefixIndex({ maxBlocksPerBackend: 1000, ttlMs: 60_000 })
    const system = chain(ids(64)) // a shared system prompt: 4 blocks
    const a = chain([...ids(64), ...ids(32, 100)])
    const b = chain([...ids(64), ...ids(32, 200)])
    index.hold('x', a)
    index.hold('x', b)
    expect(index.heldBlocks('x', system)).toBe(4)
    expect(index.heldBlocks('x', a)).toBe(6)
    index.release('x', a)
    expect(index.heldBlocks('x', a)).toBe(4) // b still holds the shared part
    index.touch('x', a, 1000, 0)
    index.reset('x')
    expect(index.cachedBlocks('x', a, 1)).toBe(4) // held by b, so still there
    index.release('x', b)
    expect(index.heldBlocks('x', system)).toBe(0)
    expect(index.cachedBlocks('x', a, 1)).toBe(0)
  })

  it('agrees with a linear scan on prefix-closed contents', () => {
    const index = new PrefixIndex({ maxBlocksPerBackend: 200, ttlMs: 60_000 })
    const prompts = Array.from({ length: 30 }, (_, i) =>
      chain([...ids(16 * (i % 7)), ...ids(16 * (1 + (i % 5)), i * 1000)]),
    )
    for (const [i, p] of prompts.entries()) index.touch('a', p, 40, i)
    const present = new Set<number>()
    for (const p of prompts) for (const h of p) if (index.cachedBlocks('a', [h], 100) === 1) present.add(h)
    for (const p of prompts) {
      let linear = 0
      while (linear < p.length && present.has(p[linear] as number)) linear++
      expect(index.cachedBlocks('a', p, 100)).toBe(linear)
    }
  })
})
