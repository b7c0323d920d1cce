import { describe, expect, it } from 'vitest'
import { policyFactories, type Policy, type PolicyUser } from '../../src/policies/index.js'
import { createRequestFactory } from './helpers.js'

// Each policy reports the tokens ahead of a request in its own order (Policy.waitAhead): what the admission
// queue's predicted wait, retry-after and early rejection are made of. The shared contract suite checks the
// bounds; these check that each policy's order shows.

const heavy: PolicyUser = { name: 'heavy', weight: 1 }
const light: PolicyUser = { name: 'light', weight: 1 }

function build(name: string, options: Record<string, unknown> = {}, users: PolicyUser[] = []): Policy {
  return policyFactories[name]!({ users, options })
}

/** `heavy` has 20 requests of 500 tokens waiting; returns the policy and the request factory. */
function backlogged(policy: Policy) {
  const makeRequest = createRequestFactory()
  for (let i = 0; i < 20; i++) policy.onEnqueue(makeRequest(heavy, i, 250, 250), i)
  return makeRequest
}

describe('Policy.waitAhead: each policy in its own order', () => {
  it("fifo: a light user's new request waits behind everything queued", () => {
    const policy = build('fifo')
    const makeRequest = backlogged(policy)
    expect(policy.waitAhead(makeRequest(light, 100, 250, 250), 100).tokensAhead).toBe(10_000)
  })

  it("vtc: a light user's new request is lifted to the heavy user's counter and goes (almost) next", () => {
    const policy = build('vtc')
    const makeRequest = backlogged(policy)
    // The heavy user has been served before: its counter is ahead of where a newcomer is lifted to.
    const served = makeRequest(heavy, 0, 250, 250)
    policy.onEnqueue(served, 0)
    policy.onAdmit(served, 0)
    expect(policy.waitAhead(makeRequest(light, 100, 250, 250), 100).tokensAhead).toBeLessThanOrEqual(500)
    // The heavy user's own next request waits behind its whole backlog.
    expect(policy.waitAhead(makeRequest(heavy, 100, 250, 250), 100).tokensAhead).toBe(10_000)
    // A second light request waits behind the first and what heavy is served meanwhile (counters alternate).
    const first = makeRequest(light, 101, 250, 250)
    policy.onEnqueue(first, 101)
    const second = policy.waitAhead(makeRequest(light, 102, 250, 250), 102).tokensAhead
    expect(second).toBeGreaterThanOrEqual(500)
    expect(second).toBeLessThanOrEqual(1_500)
  })

  it('tpm: a user over its quota waits for its reset, and its parked backlog is not ahead of others', () => {
    const capped: PolicyUser = { name: 'capped', weight: 1, tokensPerMinute: 1_000 }
    const policy = build('tpm', {}, [capped, light])
    const makeRequest = createRequestFactory()
    const spent = makeRequest(capped, 0, 500, 400)
    policy.onEnqueue(spent, 0)
    policy.onAdmit(spent, 0)
    const queued = makeRequest(capped, 1_000, 250, 250)
    policy.onEnqueue(queued, 1_000)
    expect(policy.checkQuota(queued, 1_000).allowed).toBe(false) // parks `capped`
    const own = policy.waitAhead(makeRequest(capped, 1_000, 100, 0), 1_000)
    expect(own.quotaWaitMs).toBe(59_000) // the admission at 0 leaves the window at 60 s
    expect(own.quota?.reason).toMatch(/^tokens per minute \(limit 1000, used 900, requested 600\)$/)
    expect(own.quota?.limits).toMatchObject({ limitTokens: 1_000, remainingTokens: 100 })
    // light is not behind the parked queue: it waits for the KV only.
    expect(policy.waitAhead(makeRequest(light, 1_000, 250, 250), 1_000)).toMatchObject({
      tokensAhead: 0,
      quotaWaitMs: 0,
    })
  })

  it('dynamic-tpm: users furthest below their share go first, so a light user is not behind a heavy one', () => {
    const policy = build('dynamic-tpm', { initialTokensPerMinute: 10_000 })
    const makeRequest = createRequestFactory()
    // heavy used 8,000 of its 10,000 this minute; light nothing.
    for (let i = 0; i < 16; i++) {
      const r = makeRequest(heavy, i, 250, 250)
      policy.onEnqueue(r, i)
      policy.onAdmit(r, i)
    }
    for (let i = 0; i < 4; i++) policy.onEnqueue(makeRequest(heavy, 100 + i, 250, 250), 100 + i)
    expect(policy.waitAhead(makeRequest(light, 200, 250, 250), 200).tokensAhead).toBe(0)
    expect(policy.waitAhead(makeRequest(heavy, 200, 250, 250), 200).tokensAhead).toBe(2_000)
  })
})
