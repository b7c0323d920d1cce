import { describe, expect, it } from 'vitest'
import type { PolicyUser } from '../../src/policies/index.js'
import { compareFifoAndVtc, percentile, printTable, runFairness } from './harness.js'

// A light user (never backlogged) next to a backlogged heavy user sending 10× more. Under vtc the light
// user's requests are lifted to the heavy user's counter and go first at the next free slot, so its TTFT
// is about the time until the next running request completes; under fifo they queue behind the heavy
// user's whole backlog.

const STEP_MS = 20
const OUTPUT_TOKENS = 200
const REQUEST_DURATION_MS = OUTPUT_TOKENS * STEP_MS // 4 s of decode per request

describe('fairness: a light user next to a heavy one', () => {
  it("vtc gives the light user a TTFT p90 at least 3× lower than fifo, bounded by one request's run time", async () => {
    const light: PolicyUser = { name: 'light', weight: 1 }
    const heavy: PolicyUser = { name: 'heavy', weight: 1 }
    // 4,000 tokens of KV hold 8 requests of 500 tokens: 2 requests/s served. heavy sends 3/s (backlogged),
    // light 0.3/s (well under its half share).
    const p90 = new Map<string, number>()
    const rows: (string | number)[][] = []
    for (const policy of ['fifo', 'vtc']) {
      const run = await runFairness({
        policy,
        users: [
          { user: light, ratePerSecond: 0.3, promptTokens: 300, outputTokens: OUTPUT_TOKENS },
          { user: heavy, ratePerSecond: 3, promptTokens: 300, outputTokens: OUTPUT_TOKENS },
        ],
        capacityTokens: 4_000,
        durationMs: 60_000,
        stepMs: STEP_MS,
        seed: 3,
      })
      // A request still waiting at the end counts with the time it had waited: a lower bound on its TTFT,
      // which can only understate the policy it happens to (fifo).
      const served = run.requests.filter((r) => r.user === 'light' && r.enqueuedAtMs >= 5_000).map((r) => r.ttftMs)
      const waiting = run.unserved
        .filter((r) => r.user === 'light' && r.enqueuedAtMs >= 5_000)
        .map((r) => 60_000 - r.enqueuedAtMs)
      const ttfts = [...served, ...waiting]
      expect(ttfts.length).toBeGreaterThan(8)
      p90.set(policy, percentile(ttfts, 90))
      rows.push([policy, ttfts.length, served.length, percentile(ttfts, 50), percentile(ttfts, 90), Math.max(...ttfts)])
    }
    printTable(
      'light user TTFT (ms) next to a heavy user sending 10×, 60 s',
      ['policy', 'sent', 'first token came', 'p50', 'p90', 'max'],
      rows,
    )
    const vtc = p90.get('vtc') ?? Number.NaN
    const fifo = p90.get('fifo') ?? Number.NaN
    expect(vtc * 3).toBeLessThanOrEqual(fifo)
    // "About the time until the next running request completes": never more than one request's run time.
    expect(vtc).toBeLessThanOrEqual(REQUEST_DURATION_MS)
    await compareFifoAndVtc('light-user test')
  })
})
