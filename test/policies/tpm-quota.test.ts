import { describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/core/index.js'
import { createTpmPolicy, type PolicyUser } from '../../src/policies/index.js'
import { runFairness } from '../fairness/harness.js'
import { createRequestFactory, take } from './helpers.js'

const MINUTE = 60_000

describe('tpm: static per-user quotas over a sliding minute', () => {
  it('holds a backlogged user within 5% of its tokens-per-minute quota over each minute', async () => {
    const alice: PolicyUser = { name: 'alice', weight: 1, tokensPerMinute: 30_000 }
    const bob: PolicyUser = { name: 'bob', weight: 1, tokensPerMinute: 12_000 }
    const policy = createTpmPolicy({ users: [alice, bob], options: {} })
    const result = await runFairness({
      policy,
      maxBypassMs: 0,
      users: [
        { user: alice, ratePerSecond: Number.POSITIVE_INFINITY, promptTokens: 200, outputTokens: 100 },
        { user: bob, ratePerSecond: Number.POSITIVE_INFINITY, promptTokens: 150, outputTokens: 50 },
      ],
      capacityTokens: 100_000, // KV is never the bottleneck: only the quota holds them
      durationMs: 3 * MINUTE,
    })
    for (const [user, quota] of [
      ['alice', 30_000],
      ['bob', 12_000],
    ] as const) {
      for (let minute = 0; minute < 3; minute++) {
        const tokens = result.admissions
          .filter((a) => a.user === user && a.atMs >= minute * MINUTE && a.atMs < (minute + 1) * MINUTE)
          .reduce((sum, a) => sum + a.tokens, 0)
        expect(tokens, `${user} minute ${minute}`).toBeLessThanOrEqual(quota)
        expect(tokens, `${user} minute ${minute}`).toBeGreaterThanOrEqual(quota * 0.95)
      }
      // Sliding: no 60-second window anywhere exceeds the quota, not just the aligned minutes.
      const mine = result.admissions.filter((a) => a.user === user)
      for (const start of mine) {
        const inWindow = mine.filter((a) => a.atMs >= start.atMs && a.atMs < start.atMs + MINUTE)
        expect(inWindow.reduce((s, a) => s + a.tokens, 0)).toBeLessThanOrEqual(quota)
      }
    }
  })

  it('reserves the predicted completion at admission, so a concurrent burst cannot overshoot', () => {
    const clock = createManualClock()
    const carol: PolicyUser = { name: 'carol', weight: 1, tokensPerMinute: 1_000 }
    const policy = createTpmPolicy({ users: [carol], options: {} })
    const makeRequest = createRequestFactory()
    const burst = Array.from({ length: 10 }, () => makeRequest(carol, 0, 100, 100))
    for (const r of burst) policy.onEnqueue(r, 0)
    let admitted = 0
    for (const request of burst) {
      if (!policy.checkQuota(request, clock.now()).allowed) break
      policy.onAdmit(request, clock.now())
      admitted++
    }
    // 5 × (100 prompt + 100 predicted) = 1,000: nothing has finished yet, the reservations alone hold the rest.
    expect(admitted).toBe(5)
    const denied = policy.checkQuota(burst[5]!, clock.now())
    expect(denied.allowed).toBe(false)
    if (denied.allowed) return
    expect(denied.reason).toContain('tokens per minute')
    expect(denied.retryAfterMs).toBe(MINUTE)
    expect(denied.limits).toEqual({ limitTokens: 1_000, remainingTokens: 0, resetTokensMs: MINUTE })
  })

  it('settles at the end: an over-prediction is refunded, an overrun is charged as it streams', () => {
    const clock = createManualClock()
    const dave: PolicyUser = { name: 'dave', weight: 1, tokensPerMinute: 1_000 }
    const policy = createTpmPolicy({ users: [dave], options: {} })
    const makeRequest = createRequestFactory()
    const short = makeRequest(dave, 0, 100, 400)
    policy.onEnqueue(short, 0)
    policy.onAdmit(short, 0)
    expect(policy.rateLimits(dave, 0).remainingTokens).toBe(500)
    clock.advance(1_000)
    policy.onTokens(short, 50, clock.now())
    policy.onFinish(short, 50, clock.now())
    expect(policy.rateLimits(dave, clock.now()).remainingTokens).toBe(850)

    const long = makeRequest(dave, clock.now(), 100, 10)
    policy.onEnqueue(long, clock.now())
    policy.onAdmit(long, clock.now())
    expect(policy.rateLimits(dave, clock.now()).remainingTokens).toBe(740)
    policy.onTokens(long, 200, clock.now()) // 190 beyond the prediction
    expect(policy.rateLimits(dave, clock.now()).remainingTokens).toBe(550)
    policy.onFinish(long, 260, clock.now()) // 60 more that the stream never reported
    expect(policy.rateLimits(dave, clock.now()).remainingTokens).toBe(490)
    // A minute after the first admission its (settled) charge leaves the window.
    clock.advance(MINUTE - 1_000)
    expect(policy.rateLimits(dave, clock.now()).remainingTokens).toBe(640)
  })

  it('limits requests per minute and says which quota holds the head back', () => {
    const erin: PolicyUser = { name: 'erin', weight: 1, requestsPerMinute: 3 }
    const policy = createTpmPolicy({ users: [erin], options: {} })
    const makeRequest = createRequestFactory()
    for (let i = 0; i < 3; i++) {
      const r = makeRequest(erin, i * 1_000)
      policy.onEnqueue(r, i * 1_000)
      expect(policy.checkQuota(r, i * 1_000).allowed).toBe(true)
      policy.onAdmit(r, i * 1_000)
    }
    const fourth = makeRequest(erin, 5_000)
    policy.onEnqueue(fourth, 5_000)
    const denied = policy.checkQuota(fourth, 5_000)
    expect(denied.allowed).toBe(false)
    if (denied.allowed) return
    expect(denied.reason).toContain('requests per minute')
    expect(denied.retryAfterMs).toBe(MINUTE - 5_000) // when the first request leaves the window
    expect(denied.limits).toMatchObject({ limitRequests: 3, remainingRequests: 0, resetRequestsMs: MINUTE - 5_000 })
    expect(policy.checkQuota(fourth, MINUTE).allowed).toBe(true)
  })

  it('skips an over-quota user (its head waits) while others go ahead; users without quotas are unlimited', () => {
    const capped: PolicyUser = { name: 'capped', weight: 1, tokensPerMinute: 300 }
    const free: PolicyUser = { name: 'free', weight: 1 }
    const policy = createTpmPolicy({ users: [capped, free], options: {} })
    const makeRequest = createRequestFactory()
    const c1 = makeRequest(capped, 0)
    policy.onEnqueue(c1, 0)
    policy.onAdmit(c1, 0)
    const c2 = makeRequest(capped, 1)
    const f1 = makeRequest(free, 2, 10_000, 10_000)
    policy.onEnqueue(c2, 1)
    policy.onEnqueue(f1, 2)
    // FIFO order of heads: capped's head is older.
    expect(take(policy.candidates(3))).toEqual(['capped', 'free'])
    expect(policy.checkQuota(c2, 3).allowed).toBe(false)
    // Parked behind the ready users until its quota frees, but still listed.
    expect(take(policy.candidates(4))).toEqual(['free', 'capped'])
    expect(policy.checkQuota(f1, 4)).toEqual({ allowed: true })
    expect(policy.rateLimits(free, 4)).toEqual({})
    expect(take(policy.candidates(MINUTE + 1))).toEqual(['capped', 'free'])
  })

  it('lets a request larger than the whole quota through only when the window is empty', () => {
    const tiny: PolicyUser = { name: 'tiny', weight: 1, tokensPerMinute: 100 }
    const policy = createTpmPolicy({ users: [tiny], options: {} })
    const makeRequest = createRequestFactory()
    const big = makeRequest(tiny, 0, 500, 500)
    policy.onEnqueue(big, 0)
    expect(policy.checkQuota(big, 0).allowed).toBe(true)
    policy.onAdmit(big, 0)
    policy.onFinish(big, 500, 10)
    const next = makeRequest(tiny, 20, 10, 10)
    policy.onEnqueue(next, 20)
    const denied = policy.checkQuota(next, 20)
    expect(denied.allowed).toBe(false)
    if (!denied.allowed) expect(denied.retryAfterMs).toBe(MINUTE - 20) // when the big charge leaves the window
  })

  it("exports the static quota and the last minute's usage per user", () => {
    const frank: PolicyUser = { name: 'frank', weight: 2, tokensPerMinute: 5_000 }
    const policy = createTpmPolicy({ users: [frank], options: {} })
    const makeRequest = createRequestFactory()
    const r = makeRequest(frank, 0, 100, 50)
    policy.onEnqueue(r, 0)
    policy.onAdmit(r, 0)
    expect(policy.userStates(1)).toEqual([
      { user: 'frank', weight: 2, quotaTokensPerMinute: 5_000, usedTokensLastMinute: 150 },
    ])
  })
})
