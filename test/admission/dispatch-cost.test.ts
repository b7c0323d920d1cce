import { describe, expect, it } from 'vitest'
import { MAX_CANDIDATES_PER_DECISION } from '../../src/admission/index.js'
import type { Policy } from '../../src/policies/index.js'
import { createHarness, fifo, settle, user } from './harness.js'

/** The real fifo policy, counting the heads the dispatcher looks at. */
function counting(): { policy: Policy; checks: () => number; reset: () => void } {
  const base = fifo()
  let checks = 0
  return {
    policy: {
      ...base,
      checkQuota: (request, nowMs) => {
        checks++
        return base.checkQuota(request, nowMs)
      },
    },
    checks: () => checks,
    reset: () => (checks = 0),
  }
}

/**
 * Issue 7: a dispatch decision at 10,000 queued requests over 1,000 users must cost about what it costs at 10.
 * Timing belongs to the benchmark; this pins the work per decision (heads examined), which is what makes it so.
 */
describe('admission: the work per dispatch decision does not grow with the queue', () => {
  it('examines at most MAX_CANDIDATES_PER_DECISION heads when nothing fits, with 10,000 queued over 1,000 users', async () => {
    const probe = counting()
    const h = createHarness({ capacities: [1_000], policy: probe.policy, maxQueueLength: 20_000 })
    h.submit({ id: 'running', user: user('hog'), promptTokens: 1_000, predictedOutputTokens: 0, deadlineMs: 600_000 })
    for (let i = 0; i < 10_000; i++) {
      h.submit({
        id: `q${i}`,
        user: user(`u${i % 1_000}`),
        promptTokens: 10,
        predictedOutputTokens: 10,
        deadlineMs: 600_000,
      })
    }
    await settle()
    expect(h.controller.queueDepth()).toBe(10_000)
    probe.reset()
    h.controller.dispatch()
    expect(probe.checks()).toBeLessThanOrEqual(MAX_CANDIDATES_PER_DECISION)
  })

  it('admits each fitting head after a constant number of looks', async () => {
    for (const queued of [10, 10_000]) {
      const probe = counting()
      const h = createHarness({ capacities: [1_000], policy: probe.policy, maxQueueLength: 20_000 })
      const running = h.submit({
        id: 'running',
        user: user('hog'),
        promptTokens: 1_000,
        predictedOutputTokens: 0,
        deadlineMs: 600_000,
      })
      for (let i = 0; i < queued; i++) {
        h.submit({
          id: `q${i}`,
          user: user(`u${i % 1_000}`),
          promptTokens: 50,
          predictedOutputTokens: 50,
          deadlineMs: 600_000,
        })
      }
      await settle()
      probe.reset()
      running.admission?.finish(0) // room for exactly 10 heads of 100 tokens
      await settle()
      expect(h.controller.queueDepth()).toBe(queued - 10)
      // 10 admissions at one look each, then one decision that finds nothing fits.
      expect(probe.checks()).toBeLessThanOrEqual(10 + Math.min(queued - 10, MAX_CANDIDATES_PER_DECISION))
    }
  })
})
