import { describe, expect, it } from 'vitest'
import { KvgateError } from '../../src/errors/index.js'
import { createDynamicTpmPolicy, waterFill, type Policy, type PolicyUser } from '../../src/policies/index.js'
import { createRequestFactory } from './helpers.js'

const quotas = (policy: Policy, nowMs: number): Record<string, number | undefined> =>
  Object.fromEntries(policy.userStates(nowMs).map((s) => [s.user, s.quotaTokensPerMinute]))

const a: PolicyUser = { name: 'a', weight: 1 }
const b: PolicyUser = { name: 'b', weight: 1 }
const c: PolicyUser = { name: 'c', weight: 1 }

describe('dynamic-tpm: measured capacity divided among active users', () => {
  it('water-fills: demand below the share is met, the rest is split by weight', () => {
    const inf = Number.POSITIVE_INFINITY
    const fill = waterFill(100, [
      { user: 'x', weight: 1, demand: 10 },
      { user: 'y', weight: 1, demand: inf },
      { user: 'z', weight: 2, demand: inf },
    ])
    expect(Object.fromEntries(fill)).toEqual({ x: 10, y: 30, z: 60 })
    expect(
      Object.fromEntries(
        waterFill(90, [
          { user: 'x', weight: 1, demand: 100 },
          { user: 'y', weight: 1, demand: 20 },
        ]),
      ),
    ).toEqual({
      x: 70,
      y: 20,
    })
  })

  it('is unlimited before any capacity is measured, or uses initialTokensPerMinute', () => {
    const open = createDynamicTpmPolicy({ users: [a], options: {} })
    const makeRequest = createRequestFactory()
    const r = makeRequest(a, 0, 100_000, 100_000)
    open.onEnqueue(r, 0)
    expect(open.checkQuota(r, 0)).toEqual({ allowed: true })
    expect(open.rateLimits(a, 0)).toEqual({})

    const floored = createDynamicTpmPolicy({ users: [a], options: { initialTokensPerMinute: 1_000 } })
    const first = makeRequest(a, 0, 300, 300)
    floored.onEnqueue(first, 0)
    expect(floored.checkQuota(first, 0).allowed).toBe(true)
    floored.onAdmit(first, 0)
    const s = makeRequest(a, 0, 300, 300)
    floored.onEnqueue(s, 0)
    expect(floored.checkQuota(s, 0).allowed).toBe(false)
    expect(floored.rateLimits(a, 0)).toMatchObject({ limitTokens: 1_000 })
  })

  it("hands an idle user's share to the others and takes it back when the user returns", () => {
    const policy = createDynamicTpmPolicy({ users: [a, b, c], options: { probeRatio: 0, intervalMs: 1_000 } })
    const makeRequest = createRequestFactory()
    const served = { servedTokensPerMinute: 90_000 }
    const waitingC = makeRequest(c, 0)
    for (const r of [makeRequest(a, 0), makeRequest(b, 0), waitingC]) policy.onEnqueue(r, 0)
    policy.onTick(0, served)
    expect(quotas(policy, 0)).toEqual({ a: 30_000, b: 30_000, c: 30_000 })

    // c's request leaves (its client went away) and c sends nothing more: it is active but uses nothing.
    policy.onRemove(waitingC, 500)
    policy.onTick(1_000, served)
    // a and b get what c leaves; c keeps its guaranteed share in case it comes back within the minute.
    expect(quotas(policy, 1_000)).toEqual({ a: 45_000, b: 45_000, c: 30_000 })

    // A minute without a request: c is no longer active and drops out of the division.
    for (let t = 2_000; t <= 61_000; t += 1_000) policy.onTick(t, served)
    expect(quotas(policy, 61_000)).toEqual({ a: 45_000, b: 45_000 })

    // c returns: it gets its share at once (counting itself in), and the others give it back at the next tick.
    const back = makeRequest(c, 61_500)
    policy.onEnqueue(back, 61_500)
    expect(policy.rateLimits(c, 61_500)).toMatchObject({ limitTokens: 30_000 })
    policy.onTick(62_000, served)
    expect(quotas(policy, 62_000)).toEqual({ a: 30_000, b: 30_000, c: 30_000 })
  })

  it('divides by weight, caps by a static quota, and enforces the quota in checkQuota', () => {
    const gold: PolicyUser = { name: 'gold', weight: 2 }
    const capped: PolicyUser = { name: 'capped', weight: 1, tokensPerMinute: 5_000 }
    const policy = createDynamicTpmPolicy({ users: [gold, capped], options: { probeRatio: 0 } })
    const makeRequest = createRequestFactory()
    const g = makeRequest(gold, 0, 30_000, 30_000)
    const k = makeRequest(capped, 0, 100, 100)
    policy.onEnqueue(g, 0)
    policy.onEnqueue(k, 0)
    policy.onTick(0, { servedTokensPerMinute: 90_000 })
    expect(quotas(policy, 0)).toEqual({ gold: 60_000, capped: 5_000 })
    expect(policy.checkQuota(g, 0).allowed).toBe(true)
    policy.onAdmit(g, 0)
    const g2 = makeRequest(gold, 1, 100, 100)
    policy.onEnqueue(g2, 1)
    const denied = policy.checkQuota(g2, 1)
    expect(denied.allowed).toBe(false)
    if (!denied.allowed) expect(denied.limits).toMatchObject({ limitTokens: 60_000, remainingTokens: 0 })
  })

  it('lowers its capacity estimate only while someone waits (idle periods measure demand, not capacity)', () => {
    const policy = createDynamicTpmPolicy({ users: [a], options: { probeRatio: 0, halfLifeMs: 1_000 } })
    const makeRequest = createRequestFactory()
    const r = makeRequest(a, 0)
    policy.onEnqueue(r, 0)
    policy.onTick(0, { servedTokensPerMinute: 60_000 })
    policy.onAdmit(r, 0)
    for (let t = 1_000; t <= 20_000; t += 1_000) policy.onTick(t, { servedTokensPerMinute: 1_000 })
    expect(quotas(policy, 20_000)).toEqual({ a: 60_000 })
    // Backlogged and still only 1,000 served: the estimate follows (half-life 1 s).
    const w = makeRequest(a, 20_000)
    policy.onEnqueue(w, 20_000)
    for (let t = 21_000; t <= 40_000; t += 1_000) policy.onTick(t, { servedTokensPerMinute: 1_000 })
    expect(quotas(policy, 40_000)['a']).toBeLessThan(1_100)
    // Served above the estimate raises it even when nobody waits.
    policy.onRemove(w, 40_500)
    policy.onTick(41_000, { servedTokensPerMinute: 50_000 })
    expect(quotas(policy, 41_000)['a']).toBeGreaterThan(20_000)
  })

  it('rejects bad options naming the field', () => {
    for (const [options, field] of [
      [{ intervalMs: 0 }, 'intervalMs'],
      [{ probeRatio: -0.5 }, 'probeRatio'],
      [{ initialTokensPerMinute: 'lots' }, 'initialTokensPerMinute'],
      [{ halfLife: 10 }, 'halfLife'],
    ] as const) {
      expect(() => createDynamicTpmPolicy({ users: [], options })).toThrow(KvgateError)
      expect(() => createDynamicTpmPolicy({ users: [], options })).toThrow(`policy.options.${field}`)
    }
  })

  it('probes its capacity estimate up while heads wait only for their quotas, and follows the served rate once they wait for KV', () => {
    const policy = createDynamicTpmPolicy({
      users: [a],
      options: { probeRatio: 0.1, intervalMs: 1_000, halfLifeMs: 1_000 },
    })
    const makeRequest = createRequestFactory()
    const first = makeRequest(a, 0, 500, 500)
    policy.onEnqueue(first, 0)
    policy.onTick(0, { servedTokensPerMinute: 1_000 })
    expect(quotas(policy, 0)['a']).toBeCloseTo(1_100)
    policy.onAdmit(first, 0)
    const held = makeRequest(a, 1, 500, 500)
    policy.onEnqueue(held, 1)
    // The quota holds the head (parked): the quotas, not the KV, are the bottleneck.
    expect(policy.checkQuota(held, 1).allowed).toBe(false)
    let t = 0
    for (let i = 0; i < 5; i++) {
      t += 1_000
      policy.onTick(t, { servedTokensPerMinute: 1_000 })
      for (const _ of policy.candidates(t)) policy.checkQuota(held, t) // the dispatcher re-checks and re-parks
    }
    // 1.1^5 ≈ 1.61: the estimate grew by the margin every interval instead of following the held-down rate.
    expect(quotas(policy, t)['a']).toBeGreaterThan(1_100 * 1.6)
    // Once the head fits its quota it waits for KV (ready): the served rate is the capacity again.
    policy.onRemove(held, t)
    const kvBound = makeRequest(a, t, 1, 1)
    policy.onEnqueue(kvBound, t)
    for (let i = 0; i < 10; i++) {
      t += 1_000
      policy.onTick(t, { servedTokensPerMinute: 1_000 })
    }
    expect(quotas(policy, t)['a']).toBeLessThan(1_200)
  })
})
