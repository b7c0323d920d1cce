import { describe, expect, it } from 'vitest'
import { createPredictor } from '../../src/predictor/index.js'
import { createHarness, settle, user, type Harness, type Tracked } from './harness.js'

const PROMPT = 500
const OUTPUT = 200
const TOKEN_MS = 10 // one token per running request every 10 ms: a request runs 2 s
const POLL_MS = 100

interface Run {
  admitted: number
  rejected: number
  reasons: Record<string, number>
}

/**
 * Seed 004's second defect: the same burst sent twice, the second almost entirely rejected. Here a burst of 100
 * requests (500 prompt + 200 output tokens, the issue's "done when") meets a 4,096-token backend (256 blocks of
 * 16) with a 5 s deadline, twice in a row, through the real fifo policy and predictor, with early rejection on:
 * after the first run the ledger is 0 and the measured drain rate is what it was, so the second run admits
 * the same share.
 */
async function burst(h: Harness, run: number, predicted: number): Promise<Run> {
  const streams = new Map<Tracked, number>()
  const all: Tracked[] = []
  for (let i = 0; i < 100; i++) {
    const t = h.submit({
      id: `run${run}-${i}`,
      user: user(`u${i % 4}`),
      promptTokens: PROMPT,
      predictedOutputTokens: predicted,
      deadlineMs: 5_000,
    })
    all.push(t)
  }
  for (
    let elapsed = 0;
    all.some((t) => t.status === 'pending') || [...streams.values()].some((n) => n < OUTPUT);
    elapsed += TOKEN_MS
  ) {
    await settle()
    for (const t of all) {
      if (t.status === 'admitted' && !streams.has(t)) streams.set(t, 0)
    }
    for (const [t, generated] of streams) {
      if (generated >= OUTPUT) continue
      const admission = t.admission!
      if (generated === 0) admission.firstToken()
      admission.recordTokens(1)
      streams.set(t, generated + 1)
      if (generated + 1 === OUTPUT) admission.finish(OUTPUT)
    }
    h.clock.advance(TOKEN_MS)
    if (elapsed % POLL_MS === 0) h.pollAll()
    expect(elapsed).toBeLessThan(60_000)
  }
  const reasons: Record<string, number> = {}
  for (const t of all) if (t.error !== undefined) reasons[t.error.code] = (reasons[t.error.code] ?? 0) + 1
  return { admitted: streams.size, rejected: all.filter((t) => t.status === 'rejected').length, reasons }
}

describe('admission: the same burst twice gives the same share of admissions', () => {
  it('admits the same share on the second and third runs, with the ledger back to 0 after each', async () => {
    const h = createHarness({ capacities: [4_096], headroomRatio: 0.05, earlyReject: true, maxQueueLength: 1_000 })
    const predictor = createPredictor({ quantile: 0.9, windowSize: 1_000, coldStartOutputTokens: 256, minSamples: 20 })
    const runs: Run[] = []
    for (let run = 0; run < 3; run++) {
      const predicted = predictor.predict('m', OUTPUT)
      runs.push(await burst(h, run, predicted))
      for (let i = 0; i < runs[run]!.admitted; i++) predictor.observe('m', predicted, OUTPUT)
      expect(h.ledger.reservedTokens()).toBe(0)
      expect(h.ledger.liveCount()).toBe(0)
      expect(h.controller.queueDepth()).toBe(0)
      h.clock.advance(5_000) // a pause between the runs
      h.pollAll()
    }
    const [first, ...later] = runs as [Run, ...Run[]]
    // Some are served and some rejected: the burst overloads the backend for its 5 s deadline (5 requests
    // fit at a time and each runs 2 s, so about 15 make it).
    expect(first.admitted + first.rejected).toBe(100)
    expect(first.admitted).toBeGreaterThan(10)
    expect(first.rejected).toBeGreaterThan(10)
    for (const run of later) {
      expect(run.admitted + run.rejected).toBe(100)
      expect(Math.abs(run.admitted - first.admitted), JSON.stringify(runs)).toBeLessThanOrEqual(
        Math.ceil(first.admitted * 0.1),
      )
      // Later runs reject early, instead of after waiting out the deadline: the measured rate is used.
      expect(run.reasons['predicted_wait_exceeds_deadline'] ?? 0, JSON.stringify(runs)).toBeGreaterThan(
        run.rejected / 2,
      )
    }
  })
})
