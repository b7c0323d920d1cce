import { describe, expect, it } from 'vitest'
import type { Policy, QuotaDecision } from '../../src/policies/index.js'
import { createHarness, drainBacklog, fifo, settle, user, type Harness, type Tracked } from './harness.js'

/** Four seconds of a KV-bound backlog draining 500 tokens every 500 ms. */
const measure = (h: Harness): Promise<Tracked[]> => drainBacklog(h, 'alice')

describe('admission: the drain rate counts only time spent waiting for KV', () => {
  it('measures tokens admitted per second of KV-bound backlog', async () => {
    const h = createHarness({ capacities: [1_000] })
    expect(h.controller.stats().drainTokensPerSecond).toBeUndefined()
    await measure(h)
    // 500 tokens every 500 ms while waiting: 1,000 tokens/s.
    expect(h.controller.stats().drainTokensPerSecond).toBeGreaterThan(900)
    expect(h.controller.stats().drainTokensPerSecond).toBeLessThan(1_100)
  })

  it('keeps the estimate through idle time, an outage and a quota-only backlog', async () => {
    let blockCarol = false
    const base = fifo()
    const denied: QuotaDecision = {
      allowed: false,
      retryAfterMs: 30_000,
      reason: 'requests per minute used up',
      limits: {},
    }
    const policy: Policy = {
      ...base,
      checkQuota: (r, now) => (blockCarol && r.user.name === 'carol' ? denied : base.checkQuota(r, now)),
    }
    const h = createHarness({ capacities: [1_000], policy })
    const running = await measure(h)
    for (const t of running) t.admission?.finish(0) // the rest run dry: the queue empties
    await settle()
    for (const t of running) t.admission?.finish(0)
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
    const rate = h.controller.stats().drainTokensPerSecond

    h.clock.advance(60_000) // idle
    expect(h.controller.stats().drainTokensPerSecond).toBe(rate)

    blockCarol = true // a user held only by her quota, with the KV cache empty, for 20 s
    h.submit({ id: 'carol', user: user('carol'), deadlineMs: 20_000 })
    for (let i = 0; i < 200; i++) {
      h.clock.advance(100)
      h.controller.dispatch()
    }
    expect(h.controller.stats().drainTokensPerSecond).toBe(rate)

    h.backends[0]!.usable = false // an outage with requests waiting
    h.submit({ id: 'dave', user: user('dave'), deadlineMs: 20_000 })
    for (let i = 0; i < 200; i++) {
      h.clock.advance(100)
      h.controller.dispatch()
    }
    expect(h.controller.stats().drainTokensPerSecond).toBe(rate)
  })

  it('does fall when KV really stops draining while requests wait', async () => {
    const h = createHarness({ capacities: [1_000] })
    await measure(h)
    const rate = h.controller.stats().drainTokensPerSecond!
    // Nothing finishes for 6 s while the queue waits on KV: with a 10 s memory the rate drops by more than half.
    for (let i = 0; i < 60; i++) {
      h.clock.advance(100)
      h.controller.dispatch()
    }
    expect(h.controller.stats().drainTokensPerSecond!).toBeLessThan(rate * 0.5)
  })
})
