import { describe, expect, it } from 'vitest'
import { createSeededRandom, randomInt } from '../../src/core/index.js'
import { KvgateError } from '../../src/errors/index.js'
import {
  policyFactories,
  policyNames,
  type Policy,
  type PolicyRequest,
  type PolicyUser,
} from '../../src/policies/index.js'
import { createRequestFactory, take } from './helpers.js'

// One functional suite run against every registered policy: whatever its order or quotas, a policy must
// yield each backlogged user once, forget users whose queues empty, tolerate unknown ids, and be deterministic.

const users: PolicyUser[] = [
  { name: 'alice', weight: 2, tokensPerMinute: 50_000, requestsPerMinute: 300 },
  { name: 'bob', weight: 1 },
  { name: 'carol', weight: 1, tokensPerMinute: 5_000 },
  { name: 'dave', weight: 3, requestsPerMinute: 20 },
]

function build(name: string): Policy {
  const factory = policyFactories[name]
  if (factory === undefined) throw new Error(`no policy ${name}`)
  return factory({ users, options: {} })
}

/** Random operations against a policy and a model of the admission queue; returns a trace of candidate orders. */
function runRandomOps(policy: Policy, seed: number, steps: number): string[] {
  const random = createSeededRandom(seed)
  const makeRequest = createRequestFactory()
  const waiting = new Map<string, PolicyRequest[]>() // the admission queue's per-user FIFO queues
  const running: { request: PolicyRequest; produced: number }[] = []
  const trace: string[] = []
  let nowMs = 0
  for (let step = 0; step < steps; step++) {
    nowMs += randomInt(random, 0, 200)
    const op = randomInt(random, 0, 9)
    if (op <= 3) {
      const user = users[randomInt(random, 0, users.length - 1)] as PolicyUser
      const request = makeRequest(user, nowMs, randomInt(random, 1, 400), randomInt(random, 0, 300))
      waiting.set(user.name, [...(waiting.get(user.name) ?? []), request])
      policy.onEnqueue(request, nowMs)
    } else if (op <= 5) {
      // Admit the head of the first candidate whose quota allows, as a dispatcher would.
      for (const name of policy.candidates(nowMs)) {
        const head = waiting.get(name)?.[0]
        expect(head, `candidate ${name} has nothing waiting`).toBeDefined()
        if (head === undefined) break
        const decision = policy.checkQuota(head, nowMs)
        if (!decision.allowed) {
          expect(decision.retryAfterMs).toBeGreaterThan(0)
          expect(decision.reason.length).toBeGreaterThan(0)
          continue
        }
        waiting.get(name)?.shift()
        if (waiting.get(name)?.length === 0) waiting.delete(name)
        policy.onAdmit(head, nowMs)
        running.push({ request: head, produced: 0 })
        break
      }
    } else if (op === 6) {
      // A waiting request leaves (deadline or client gone), from anywhere in its queue.
      const names = [...waiting.keys()]
      if (names.length > 0) {
        const name = names[randomInt(random, 0, names.length - 1)] as string
        const queue = waiting.get(name) as PolicyRequest[]
        const [removed] = queue.splice(randomInt(random, 0, queue.length - 1), 1)
        if (queue.length === 0) waiting.delete(name)
        policy.onRemove(removed as PolicyRequest, nowMs)
      }
    } else if (op === 7 && running.length > 0) {
      const r = running[randomInt(random, 0, running.length - 1)] as { request: PolicyRequest; produced: number }
      const tokens = randomInt(random, 1, 50)
      r.produced += tokens
      policy.onTokens(r.request, tokens, nowMs)
    } else if (op === 8 && running.length > 0) {
      const [r] = running.splice(randomInt(random, 0, running.length - 1), 1)
      if (r) policy.onFinish(r.request, r.produced + randomInt(random, 0, 20), nowMs)
    } else {
      policy.onTick(nowMs, { servedTokensPerMinute: randomInt(random, 0, 100_000) })
    }
    // Invariants after every operation. The wait estimate of a would-be request: within what is queued,
    // its own user's queue included, and side-effect free (the order below must not notice it was asked).
    const queuedNeed = [...waiting.values()].flat().reduce((n, r) => n + r.promptTokens + r.predictedOutputTokens, 0)
    const asker = users[step % users.length] as PolicyUser
    const ownNeed = (waiting.get(asker.name) ?? []).reduce((n, r) => n + r.promptTokens + r.predictedOutputTokens, 0)
    const ahead = policy.waitAhead(makeRequest(asker, nowMs, 50, 50), nowMs)
    expect(ahead.tokensAhead).toBeGreaterThanOrEqual(ownNeed - 1e-6)
    expect(ahead.tokensAhead).toBeLessThanOrEqual(queuedNeed + 1e-6)
    expect(ahead.quotaWaitMs).toBeGreaterThanOrEqual(0)
    const order = take(policy.candidates(nowMs))
    expect(new Set(order).size).toBe(order.length)
    expect(new Set(order)).toEqual(new Set(waiting.keys()))
    trace.push(order.join(','))
  }
  return trace
}

describe.each(policyNames())('policy contract: %s', (name) => {
  it('has its registered name', () => {
    expect(build(name).name).toBe(name)
  })

  it('yields no candidates when nothing waits', () => {
    const policy = build(name)
    expect(take(policy.candidates(0))).toEqual([])
    policy.onTick(100, { servedTokensPerMinute: 0 })
    expect(take(policy.candidates(100))).toEqual([])
  })

  it('yields only backlogged users, and forgets them on admit and on remove', () => {
    const policy = build(name)
    const makeRequest = createRequestFactory()
    const [alice, bob] = users as [PolicyUser, PolicyUser]
    const a1 = makeRequest(alice, 0)
    const a2 = makeRequest(alice, 1)
    const b1 = makeRequest(bob, 2)
    policy.onEnqueue(a1, 0)
    policy.onEnqueue(a2, 1)
    policy.onEnqueue(b1, 2)
    expect(new Set(take(policy.candidates(3)))).toEqual(new Set(['alice', 'bob']))
    policy.onAdmit(a1, 3)
    expect(new Set(take(policy.candidates(3)))).toEqual(new Set(['alice', 'bob']))
    policy.onRemove(a2, 4)
    expect(take(policy.candidates(4))).toEqual(['bob'])
    policy.onRemove(b1, 5)
    expect(take(policy.candidates(5))).toEqual([])
    policy.onTokens(a1, 10, 6)
    policy.onFinish(a1, 10, 7)
    expect(take(policy.candidates(7))).toEqual([])
  })

  it('ignores ids it never saw (a reload hands a new policy old requests) and duplicate events', () => {
    const policy = build(name)
    const makeRequest = createRequestFactory()
    const stranger = makeRequest(users[1] as PolicyUser, 0)
    expect(() => {
      policy.onRemove(stranger, 0)
      policy.onAdmit(stranger, 0)
      policy.onTokens(stranger, 5, 1)
      policy.onFinish(stranger, 5, 2)
      policy.onFinish(stranger, 5, 2)
    }).not.toThrow()
    const again = makeRequest(users[1] as PolicyUser, 3)
    policy.onEnqueue(again, 3)
    policy.onEnqueue(again, 3)
    expect(take(policy.candidates(3))).toEqual(['bob'])
    policy.onRemove(again, 4)
    expect(take(policy.candidates(4))).toEqual([])
  })

  it('keeps yielding each backlogged user at most once when the dispatcher admits mid-iteration', () => {
    const policy = build(name)
    const makeRequest = createRequestFactory()
    const queued = users.map((u, i) => makeRequest(u, i))
    queued.forEach((r, i) => {
      policy.onEnqueue(r, i)
    })
    const seen: string[] = []
    for (const user of policy.candidates(10)) {
      seen.push(user)
      const request = queued.find((r) => r.user.name === user) as PolicyRequest
      policy.onAdmit(request, 10)
    }
    expect(new Set(seen).size).toBe(seen.length)
    expect(new Set(seen)).toEqual(new Set(users.map((u) => u.name)))
    expect(take(policy.candidates(11))).toEqual([])
  })

  it("estimates the wait in its own order: nothing ahead when idle, its user's earlier requests always", () => {
    const policy = build(name)
    const makeRequest = createRequestFactory()
    const [alice, bob] = users as [PolicyUser, PolicyUser]
    expect(policy.waitAhead(makeRequest(bob, 0), 0)).toMatchObject({ tokensAhead: 0, quotaWaitMs: 0 })
    const a1 = makeRequest(alice, 0, 100, 100)
    const a2 = makeRequest(alice, 1, 100, 100)
    policy.onEnqueue(a1, 0)
    policy.onEnqueue(a2, 1)
    // a2 is queued (the newest of alice's): a1 goes before it, a2 itself does not count.
    expect(policy.waitAhead(a2, 2).tokensAhead).toBe(200)
    // A would-be third request of alice's waits behind both.
    expect(policy.waitAhead(makeRequest(alice, 2, 100, 100), 2).tokensAhead).toBe(400)
    // bob's would-be request waits behind at most alice's backlog, in whatever order the policy serves.
    const bobAhead = policy.waitAhead(makeRequest(bob, 2, 100, 100), 2).tokensAhead
    expect(bobAhead).toBeGreaterThanOrEqual(0)
    expect(bobAhead).toBeLessThanOrEqual(400)
    policy.onAdmit(a1, 3)
    policy.onAdmit(a2, 3)
    expect(policy.waitAhead(makeRequest(alice, 4), 4).tokensAhead).toBe(0)
  })

  it('rejects unknown options, naming the field', () => {
    const factory = policyFactories[name]
    expect(factory).toBeDefined()
    let caught: unknown
    try {
      factory?.({ users, options: { noSuchKnob: 1 } })
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(KvgateError)
    expect((caught as KvgateError).code).toBe('invalid_policy_options')
    expect((caught as KvgateError).message).toContain('policy.options.noSuchKnob')
  })

  it('accepts deep-frozen options (config freezes them)', () => {
    const factory = policyFactories[name]
    expect(() => factory?.({ users: Object.freeze([...users]), options: Object.freeze({}) })).not.toThrow()
  })

  it('keeps its invariants over thousands of random operations, deterministically', () => {
    const first = runRandomOps(build(name), 42, 3_000)
    const second = runRandomOps(build(name), 42, 3_000)
    expect(second).toEqual(first)
    // The random walk must actually exercise a backlog, or the invariants above were checked on nothing.
    expect(first.filter((order) => order.includes(',')).length).toBeGreaterThan(100)
  })

  it('reports per-user state and rate limits in the contract shape', () => {
    const policy = build(name)
    const makeRequest = createRequestFactory()
    const request = makeRequest(users[0] as PolicyUser, 0)
    policy.onEnqueue(request, 0)
    policy.onAdmit(request, 0)
    for (const state of policy.userStates(1)) {
      expect(typeof state.user).toBe('string')
      expect(state.weight).toBeGreaterThan(0)
    }
    const limits = policy.rateLimits(users[0] as PolicyUser, 1)
    for (const value of Object.values(limits)) expect(value).toBeGreaterThanOrEqual(0)
  })
})
