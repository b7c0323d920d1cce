import { describe, expect, it } from 'vitest'
import { analyzeWorkload, parseTrace } from '../../src/bench/index.js'

const trace = (text: string) => {
  const parsed = parseTrace(text)
  return { kind: 'trace' as const, format: parsed.format, requests: parsed.requests, skipped: parsed.skipped }
}

describe('bench analyze', () => {
  it('prefix sharing on hash-id prompts: an identical prompt reuses every full block', () => {
    // 514 tokens = user marker + one 512-token block + generation marker; block 16 → 32 full blocks.
    const analysis = analyzeWorkload(
      trace(
        '{"timestamp": 0, "input_length": 514, "output_length": 1, "hash_ids": [7]}\n{"timestamp": 2000, "input_length": 514, "output_length": 1, "hash_ids": [7]}\n',
      ),
      { blockSizes: [16] },
    )
    const [figures] = analysis.prefixSharing ?? []
    expect(figures?.distinctBlocks).toBe(32)
    expect(figures?.blockReuseRate).toBe(1)
    expect(figures?.blockHits['mean']).toBe(2)
    expect(figures?.sharingFraction['min']).toBe(0)
    expect(figures?.sharingFraction['max']).toBeCloseTo(512 / 514, 10)
    expect(figures?.reuseGapSec['mean']).toBe(2)
  })

  it('a shared first block is reused, a different second block is not, and sharing stops at the first miss', () => {
    const analysis = analyzeWorkload(
      trace(
        '{"timestamp": 0, "input_length": 1026, "output_length": 1, "hash_ids": [1, 2]}\n{"timestamp": 1000, "input_length": 1026, "output_length": 1, "hash_ids": [1, 3]}\n',
      ),
      { blockSizes: [512] },
    )
    const [figures] = analysis.prefixSharing ?? []
    // Blocks of 512: [marker + 511 of h1], [1 of h1 + 511 of h2|h3]: the first is shared, the second differs.
    expect(figures?.distinctBlocks).toBe(3)
    expect(figures?.sharingFraction['max']).toBeCloseTo(512 / 1026, 10)
    expect(figures?.blockReuseRate).toBeCloseTo(1 / 3, 10)
  })

  it('conversation rounds share their history; single-turn requests share nothing', () => {
    const conv = analyzeWorkload(
      trace('user_id time_stamp(seconds) query_length response_length round_index\n1 0 66 64 0\n1 10 34 10 1\n'),
      {
        blockSizes: [32],
      },
    )
    // Round 1's prompt starts with round 0's 66-token prompt minus its generation marker (65 tokens), then the
    // answer: its first two 32-token blocks are round 0's.
    expect(conv.prefixSharing?.[0]?.sharingFraction['max']).toBeCloseTo(64 / (66 + 64 + 34), 10)
    expect(conv.conversations?.count).toBe(1)
    expect(conv.conversations?.durationSec?.['max']).toBe(10)
    const single = analyzeWorkload(
      trace('Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,a,100,5,105,x\n1,a,100,5,105,x\n'),
    )
    expect(single.prefixSharing).toBeUndefined()
    expect(single.rate?.peak).toBeGreaterThan(0)
  })

  it('fits a Zipf exponent to per-user request counts', () => {
    const rows = ['user_id time_stamp(seconds) query_length response_length round_index']
    let t = 0
    for (let rank = 1; rank <= 6; rank++) {
      const count = Math.round(120 / rank ** 1.2)
      for (let i = 0; i < count; i++) {
        t += 0.01
        rows.push(`${rank} ${t.toFixed(2)} 10 5 ${i}`)
      }
    }
    const analysis = analyzeWorkload(trace(rows.join('\n')))
    expect(analysis.users.count).toBe(6)
    expect(analysis.users.zipf?.alpha).toBeGreaterThan(1.1)
    expect(analysis.users.zipf?.alpha).toBeLessThan(1.3)
    expect(analysis.users.top[0]).toMatchObject({ user: '1', requests: 120 })
  })
})
