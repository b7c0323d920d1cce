import { describe, expect, it } from 'vitest'
import { formatSummary, summarize } from '../../src/bench/index.js'
import type { RequestRecord } from '../../src/bench/runner.js'

// vLLM's multi-turn bench calls describe() once on a DataFrame of all requests: every column gets the same
// percentiles, chosen from the number of requests, whatever a column's own count of values.
const record = (index: number, outputTokens: number): RequestRecord => ({
  index,
  user: 'u',
  scheduledMs: 0,
  startMs: 0,
  endMs: 100,
  outcome: 'completed',
  status: 200,
  attempts: 1,
  rejectionsMs: [],
  ttftMs: 10 + index,
  latencyMs: 100 + index,
  ...(outputTokens > 1 ? { tpotMs: 90 / (outputTokens - 1) + index / 100 } : {}),
  inputNumTurns: 1,
  inputNumTokens: 50,
  requestedOutputTokens: outputTokens,
  outputNumTokens: outputTokens,
  outputNumChunks: outputTokens - 1,
})

describe('summary table', () => {
  it('gives tpot_ms the 99% column too when a single-token request leaves it 99 values of 100 requests', () => {
    const records = Array.from({ length: 100 }, (_, i) => record(i, i === 0 ? 1 : 10))
    const summary = summarize({ records, runtimeMs: 1000 })
    expect(summary.table.tpot_ms['count']).toBe(99)
    expect(Object.keys(summary.table.tpot_ms)).toEqual(Object.keys(summary.table.ttft_ms))
    // pandas: 99 values 10.01…10.99, position 98·0.99 = 97.02 → 10.98 + 0.02·0.01
    expect(summary.table.tpot_ms['99%']).toBeCloseTo(10.9802, 6)
    const tpotRow = formatSummary(summary)
      .split('\n')
      .find((line) => line.startsWith('tpot_ms'))
    expect(tpotRow).not.toMatch(/NaN/)
  })
})
