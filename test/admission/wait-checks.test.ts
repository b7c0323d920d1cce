import { describe, expect, it } from 'vitest'
import type { WaitCheck } from '../../src/admission/index.js'
import { createHarness, drainBacklog, settle, user, type Harness, type Tracked } from './harness.js'

/** Finish the oldest running request every `everyMs` for `ms`, as a backend draining at that pace. */
async function drain(h: Harness, tracked: Tracked[], everyMs: number, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += everyMs) {
    h.clock.advance(everyMs)
    tracked.find((x) => x.status === 'admitted' && x.admission?.finished === false)?.admission?.finish(250)
    await settle()
  }
}

describe('admission: predicted waits checked against what happened', () => {
  it('shadows an early rejection and measures its would-be wait from the queue that followed', async () => {
    const checks: WaitCheck[] = []
    const h = createHarness({ capacities: [1_000], earlyReject: true, onWaitCheck: (c) => checks.push(c) })
    const all = await drainBacklog(h, 'heavy', 'w')
    expect(h.controller.queueDepth()).toBe(2) // 1,000 tokens queued, two running, ~1,000 tokens/s
    const hopeless = h.submit({
      id: 'hopeless',
      user: user('heavy'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 500,
    })
    await settle()
    expect(hopeless.error?.code).toBe('predicted_wait_exceeds_deadline')
    // It would have gone after the two queued (admitted at +500 and +1,000) once 500 tokens were free (+1,500).
    await drain(h, all, 500, 2_000)
    const shadow = checks.find((c) => c.kind === 'rejected')
    expect(shadow).toBeDefined()
    expect(shadow?.bucket).toBe('ge20pct') // half of the cache
    expect(shadow!.predictedMs).toBeGreaterThan(1_200)
    expect(shadow!.predictedMs).toBeLessThan(1_800)
    expect(shadow!.actualMs).toBe(1_500)
    // The two queued before it came before the drain rate was measured: a cold guess is not checked.
    expect(checks.filter((c) => c.kind === 'admitted')).toHaveLength(0)
    for (const t of all) t.admission?.finish(0)
    await settle()
    expect(h.ledger.reservedTokens()).toBe(0)
  })

  it('backs off while its predictions run long: a faster drain than measured scales them down', async () => {
    const checks: WaitCheck[] = []
    const h = createHarness({
      capacities: [1_000],
      earlyReject: false,
      maxQueueLength: 1_000,
      onWaitCheck: (c) => checks.push(c),
    })
    const all = await drainBacklog(h, 'heavy', 'w')
    const factorsBefore = h.controller.stats().waitFactors.find((f) => f.bucket === 'ge20pct')
    expect(factorsBefore).toEqual({ bucket: 'ge20pct', median: 1, low: 1 }) // nothing checked yet
    // Requests keep coming, but the backend now ends one every 100 ms instead of every 500 ms: what the
    // measured rate (still mostly the old one) predicts runs long.
    for (let i = 0; i < 40; i++) {
      all.push(
        h.submit({
          id: `q${i}`,
          user: user('heavy'),
          promptTokens: 250,
          predictedOutputTokens: 250,
          deadlineMs: 600_000,
        }),
      )
      await settle()
      await drain(h, all, 100, 100)
    }
    await drain(h, all, 100, 8_000)
    const admitted = checks.filter((c) => c.kind === 'admitted')
    expect(admitted.length).toBeGreaterThan(16)
    const factors = h.controller.stats().waitFactors.find((f) => f.bucket === 'ge20pct')!
    expect(factors.low).toBeLessThan(1)
    expect(factors.median).toBeLessThan(1)
    expect(factors.low).toBeLessThanOrEqual(factors.median)
    for (const t of all) t.admission?.finish(0)
    await settle()
    expect(h.ledger.reservedTokens()).toBe(0)
  })
})
