import { describe, expect, it } from 'vitest'
import type { Policy, QuotaDecision } from '../../src/policies/index.js'
import { createHarness, fifo, settle, user, type Harness, type Tracked } from './harness.js'

/** Keep a backlog draining at a steady 500 tokens every 500 ms for `seconds`: the drain rate gets measured. */
async function drainSteadily(h: Harness, running: Tracked[], seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 2; i++) {
    h.clock.advance(500)
    const oldest = running.find((t) => t.status === 'admitted' && t.admission?.finished === false)
    oldest?.admission?.finish(250)
    await settle()
  }
}

describe('admission: the deadline tick answers 429 with an honest retry-after (fifo)', () => {
  it('rejects a request still queued at its deadline, on the first tick at or after it', async () => {
    const h = createHarness({ capacities: [1_000], deadlineTickMs: 50 })
    const running = h.submit({ id: 'running', promptTokens: 500, predictedOutputTokens: 500 })
    const waiting = h.submit({ id: 'waiting', deadlineMs: 500 })
    await settle()
    expect(running.status).toBe('admitted')
    h.clock.advance(499)
    await settle()
    expect(waiting.status).toBe('pending')
    h.clock.advance(1)
    await settle()
    expect(waiting.status).toBe('rejected')
    const error = waiting.error!
    expect(error.statusCode).toBe(429)
    expect(error.code).toBe('queue_deadline_exceeded')
    expect(error.toBody().error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' })
    expect(error.message).toMatch(
      /^The request waited 500ms for KV-cache capacity without being admitted\. Please try again in [\d.]+s\. \(kvgate reason: queue_deadline_exceeded\)$/,
    )
    expect(error.headers['x-kvgate-reject-reason']).toBe('queue_deadline_exceeded')
    const seconds = Number(error.headers['retry-after'])
    const ms = Number(error.headers['retry-after-ms'])
    expect(seconds).toBeGreaterThanOrEqual(1)
    expect(seconds).toBeLessThanOrEqual(60)
    expect(ms).toBeGreaterThanOrEqual(1_000)
    expect(Math.ceil(ms / 1_000)).toBe(seconds)
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.events.find((e) => e.id === 'waiting')).toMatchObject({
      kind: 'rejected',
      outcome: 'rejected_deadline',
      waitedMs: 500,
    })
    // Nothing was reserved for it; the running request's reservation is the only one.
    expect(h.ledger.reservedTokens()).toBe(1_000)
  })

  it('never admits a request past its deadline, even between two ticks', async () => {
    const h = createHarness({ capacities: [1_000], deadlineTickMs: 1_000 })
    const running = h.submit({ id: 'running', promptTokens: 500, predictedOutputTokens: 500 })
    const late = h.submit({ id: 'late', deadlineMs: 100 })
    await settle()
    h.clock.advance(150) // past its deadline, but the next tick is at 1,000 ms
    running.admission?.finish(0) // room appears: the dispatcher answers the late request instead of admitting it
    await settle()
    expect(late.error?.code).toBe('queue_deadline_exceeded')
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('computes retry-after from the measured drain rate and the tokens ahead, not a constant', async () => {
    const h = createHarness({ capacities: [1_000] })
    const alice = Array.from({ length: 12 }, (_, i) =>
      h.submit({ id: `a${i}`, user: user('alice'), promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 60_000 }),
    )
    await settle()
    await drainSteadily(h, alice, 4)
    const rate = h.controller.stats().drainTokensPerSecond
    expect(rate).toBeGreaterThan(900) // 500 tokens every 500 ms: 1,000 tokens/s
    expect(rate).toBeLessThan(1_100)
    expect(h.controller.queueDepth()).toBe(2)

    // bob's request expires: under fifo alice's two queued requests (1,000 tokens) go before his retry, and
    // his own 500 must fit too.
    const bob = h.submit({
      id: 'bob',
      user: user('bob'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 200,
    })
    h.clock.advance(200)
    await settle()
    expect(bob.error?.code).toBe('queue_deadline_exceeded')
    const rateNow = h.controller.stats().drainTokensPerSecond! / 1_000
    const expectedMs = Math.max(1_000, Math.ceil(1_500 / rateNow))
    expect(bob.error?.headers['retry-after-ms']).toBe(String(expectedMs))
    expect(bob.error?.headers['x-should-retry']).toBeUndefined()

    // The same request with more of alice's work queued ahead of her own retry waits longer.
    const shortQueueWait = h.controller.predictWaitMs(user('alice'), 500)
    for (let i = 0; i < 10; i++)
      h.submit({
        id: `more${i}`,
        user: user('alice'),
        promptTokens: 250,
        predictedOutputTokens: 250,
        deadlineMs: 60_000,
      })
    await settle()
    expect(h.controller.predictWaitMs(user('alice'), 500)).toBeCloseTo(shortQueueWait + 5_000 / rateNow, 0)
  })

  it('says x-should-retry: false and clamps to 60 s when the predicted wait is longer', async () => {
    const h = createHarness({ capacities: [1_000], maxQueueLength: 1_000 })
    const alice = Array.from({ length: 12 }, (_, i) =>
      h.submit({ id: `a${i}`, promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 600_000 }),
    )
    await settle()
    await drainSteadily(h, alice, 4)
    // 200 more of alice's requests: at ~1,000 tokens/s her next one waits ~100 s.
    for (let i = 0; i < 200; i++)
      h.submit({ id: `b${i}`, promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 600_000 })
    const late = h.submit({ id: 'late', promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 100 })
    h.clock.advance(100)
    await settle()
    expect(late.error?.headers).toMatchObject({
      'retry-after': '60',
      'retry-after-ms': '60000',
      'x-should-retry': 'false',
      'x-kvgate-reject-reason': 'queue_deadline_exceeded',
    })
  })

  it('uses a cold estimate (usable capacity turning over in 10 s) before any backlog was measured', async () => {
    const h = createHarness({ capacities: [1_000] })
    h.submit({ id: 'running', promptTokens: 500, predictedOutputTokens: 500 })
    const waiting = h.submit({ id: 'waiting', promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 100 })
    h.clock.advance(100)
    await settle()
    // 500 tokens at 1,000 tokens / 10 s = 5 s.
    expect(waiting.error?.headers['retry-after-ms']).toBe('5000')
    expect(waiting.error?.headers['retry-after']).toBe('5')
  })

  it('counts the room on every usable backend in the predicted wait', async () => {
    const h = createHarness({ capacities: [1_000, 1_000] })
    h.submit({ id: 'r0', promptTokens: 700, predictedOutputTokens: 0 })
    h.submit({ id: 'r1', promptTokens: 700, predictedOutputTokens: 0 })
    await settle()
    // 300 free on each: 500 tokens fit nowhere at once, but the queue ahead of a retry can use both.
    expect(h.controller.predictWaitMs(user('x'), 500)).toBe(0)
    // 800 ahead − 600 room = 200 tokens at the cold rate (2 × 1,000 tokens per 10 s): 1 s.
    expect(h.controller.predictWaitMs(user('x'), 800)).toBe(1_000)
    h.backends[1]!.usable = false
    expect(h.controller.predictWaitMs(user('x'), 500)).toBe(2_000) // 200 tokens at 1,000 per 10 s
  })

  it('answers quota_exceeded when the policy still holds the user back at the deadline, with x-ratelimit-*', async () => {
    const limits = {
      limitTokens: 1_000,
      remainingTokens: 0,
      resetTokensMs: 360_000,
      limitRequests: 10,
      remainingRequests: 3,
      resetRequestsMs: 1_500,
    }
    const base = fifo()
    const denied: QuotaDecision = {
      allowed: false,
      retryAfterMs: 360_000,
      reason: 'tokens per minute (1000) used up',
      limits,
    }
    const quotaPolicy: Policy = { ...base, name: 'quota-mock', checkQuota: () => denied, rateLimits: () => limits }
    const h = createHarness({ capacities: [1_000], policy: quotaPolicy })
    const first = h.submit({ id: 'first', user: user('carol'), deadlineMs: 300 })
    const second = h.submit({ id: 'second', user: user('carol'), deadlineMs: 400 })
    await settle()
    expect(first.status).toBe('pending') // plenty of KV: only the quota holds it
    h.clock.advance(400)
    await settle()
    for (const t of [first, second]) {
      expect(t.error?.statusCode).toBe(429)
      expect(t.error?.code).toBe('quota_exceeded')
      expect(t.error?.message).toBe(
        'Rate limit reached for user carol: tokens per minute (1000) used up. Please try again in 6m0s. (kvgate reason: quota_exceeded)',
      )
      expect(t.error?.headers).toEqual({
        'retry-after': '60',
        'retry-after-ms': '60000',
        'x-should-retry': 'false',
        'x-kvgate-reject-reason': 'quota_exceeded',
        'x-ratelimit-limit-tokens': '1000',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': '6m0s',
        'x-ratelimit-limit-requests': '10',
        'x-ratelimit-remaining-requests': '3',
        'x-ratelimit-reset-requests': '1.5s',
      })
      // Requests remain, tokens do not: the type names the limit that was hit.
      expect(t.error?.toBody().error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' })
    }
    expect(h.events.filter((e) => e.outcome === 'rejected_quota')).toHaveLength(2)
  })

  it('answers 503 at the deadline when no backend is usable any more', async () => {
    const h = createHarness({ capacities: [1_000] })
    h.submit({ id: 'running', promptTokens: 500, predictedOutputTokens: 500 })
    const waiting = h.submit({ id: 'waiting', deadlineMs: 100 })
    h.backends[0]!.usable = false
    h.clock.advance(100)
    await settle()
    expect(waiting.error?.statusCode).toBe(503)
    expect(waiting.error?.code).toBe('no_backend_available')
    expect(h.events.find((e) => e.id === 'waiting')?.outcome).toBe('rejected_unavailable')
  })
})
