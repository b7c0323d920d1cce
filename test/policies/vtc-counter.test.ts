import { describe, expect, it } from 'vitest'
import { jainIndex } from '../../src/bench/index.js'
import { KvgateError } from '../../src/errors/index.js'
import {
  createFifoPolicy,
  createVtcPolicy,
  vtcServiceBound,
  type Policy,
  type PolicyUser,
} from '../../src/policies/index.js'
import { runFairness } from '../fairness/harness.js'
import { createRequestFactory, take } from './helpers.js'

const counterOf = (policy: Policy, user: string): number | undefined =>
  policy.userStates(0).find((s) => s.user === user)?.counter

const light: PolicyUser = { name: 'light', weight: 1 }
const heavy: PolicyUser = { name: 'heavy', weight: 1 }

describe('vtc: virtual token counter', () => {
  it('charges w_in × prompt + w_out × predicted at admission, divided by the weight', () => {
    const policy = createVtcPolicy({ users: [], options: { wIn: 1, wOut: 2 } })
    const makeRequest = createRequestFactory()
    const r = makeRequest({ name: 'gold', weight: 4 }, 0, 100, 50)
    policy.onEnqueue(r, 0)
    policy.onAdmit(r, 0)
    expect(counterOf(policy, 'gold')).toBe((100 + 2 * 50) / 4)
    policy.onTokens(r, 50, 1) // within the prediction: already charged
    expect(counterOf(policy, 'gold')).toBe(50)
    policy.onTokens(r, 10, 2) // beyond it: charged as it streams
    expect(counterOf(policy, 'gold')).toBe(55)
    policy.onFinish(r, 60, 3)
    expect(counterOf(policy, 'gold')).toBe(55)
  })

  it('refunds an over-prediction at the end', () => {
    const policy = createVtcPolicy({ users: [], options: {} })
    const makeRequest = createRequestFactory()
    const r = makeRequest(light, 0, 100, 300)
    policy.onEnqueue(r, 0)
    policy.onAdmit(r, 0)
    expect(counterOf(policy, 'light')).toBe(700)
    policy.onTokens(r, 20, 1)
    policy.onFinish(r, 20, 2)
    expect(counterOf(policy, 'light')).toBe(140)
  })

  it('without prediction (predictive: false) charges each completion token as it streams', () => {
    const policy = createVtcPolicy({ users: [], options: { predictive: false, wIn: 1, wOut: 3 } })
    const makeRequest = createRequestFactory()
    const r = makeRequest(light, 0, 100, 300)
    policy.onEnqueue(r, 0)
    policy.onAdmit(r, 0)
    expect(counterOf(policy, 'light')).toBe(100)
    policy.onTokens(r, 10, 1)
    expect(counterOf(policy, 'light')).toBe(130)
    policy.onFinish(r, 12, 2) // two tokens the stream never reported
    expect(counterOf(policy, 'light')).toBe(136)
  })

  it('lifts a returning user to the smallest backlogged counter, so idleness earns no credit', () => {
    const policy = createVtcPolicy({ users: [], options: {} })
    const makeRequest = createRequestFactory()
    // light is served once, then goes idle while heavy is served a lot.
    const l1 = makeRequest(light, 0, 100, 0)
    policy.onEnqueue(l1, 0)
    policy.onAdmit(l1, 0)
    policy.onFinish(l1, 0, 1)
    for (let i = 0; i < 20; i++) {
      const h = makeRequest(heavy, 10 + i, 100, 0)
      policy.onEnqueue(h, 10 + i)
    }
    for (let i = 0; i < 10; i++) {
      const [first] = take(policy.candidates(100), 1)
      expect(first).toBe('heavy')
    }
    // Admit ten of heavy's twenty (each charges 100).
    const heavyQueue = Array.from({ length: 10 }, (_, i) => `r${i + 1}`)
    for (const id of heavyQueue)
      policy.onAdmit({ id, user: heavy, promptTokens: 100, predictedOutputTokens: 0, enqueuedAtMs: 0 }, 200)
    // heavy joined an empty queue and was lifted to the counter light left with (100).
    expect(counterOf(policy, 'heavy')).toBe(1_100)
    expect(counterOf(policy, 'light')).toBe(100)
    const l2 = makeRequest(light, 300, 100, 0)
    policy.onEnqueue(l2, 300)
    // Without the lift light would sit at 100 and win the next nine decisions in a row.
    expect(counterOf(policy, 'light')).toBe(1_100)
    // Equal counters: the user admitted least recently (light) goes first, then they alternate.
    expect(take(policy.candidates(300))).toEqual(['light', 'heavy'])
  })

  it('with nobody else backlogged, lifts a newcomer to the counter the last user left with', () => {
    const policy = createVtcPolicy({ users: [], options: {} })
    const makeRequest = createRequestFactory()
    const h = makeRequest(heavy, 0, 500, 0)
    policy.onEnqueue(h, 0)
    policy.onAdmit(h, 0)
    const n = makeRequest({ name: 'newcomer', weight: 1 }, 10, 100, 0)
    policy.onEnqueue(n, 10)
    expect(counterOf(policy, 'newcomer')).toBe(500)
  })

  it('rejects bad options naming the field', () => {
    const fails = (options: Record<string, unknown>): string => {
      try {
        createVtcPolicy({ users: [], options })
      } catch (err) {
        expect(err).toBeInstanceOf(KvgateError)
        return (err as KvgateError).message
      }
      return ''
    }
    expect(fails({ wOut: -1 })).toContain('policy.options.wOut')
    expect(fails({ wIn: 'one' })).toContain('policy.options.wIn')
    expect(fails({ predictive: 'yes' })).toContain('policy.options.predictive')
    expect(fails({ wIn: 0, wOut: 0 })).toBe('policy.options.wOut: must be > 0 (when policy.options.wIn is 0)')
    expect(fails({ wIn: 0 })).toBe('')
  })

  it('gives 2:1 service to weights 2:1 within 10%', async () => {
    const gold: PolicyUser = { name: 'gold', weight: 2 }
    const silver: PolicyUser = { name: 'silver', weight: 1 }
    const policy = createVtcPolicy({ users: [gold, silver], options: {} })
    const result = await runFairness({
      policy,
      maxBypassMs: 0,
      users: [
        { user: gold, ratePerSecond: Number.POSITIVE_INFINITY, promptTokens: 200, outputTokens: 100 },
        { user: silver, ratePerSecond: Number.POSITIVE_INFINITY, promptTokens: 200, outputTokens: 100 },
      ],
      capacityTokens: 3_000,
      durationMs: 60_000,
    })
    // service is weight-normalised: raw tokens are service × weight.
    const goldRaw = (result.service.get('gold') ?? 0) * 2
    const silverRaw = result.service.get('silver') ?? 0
    expect(goldRaw / silverRaw).toBeGreaterThan(2 * 0.9)
    expect(goldRaw / silverRaw).toBeLessThan(2 * 1.1)
  })

  it('keeps the service difference of two backlogged users with 1:10 rates within the bound; fifo does not', async () => {
    const capacityTokens = 3_000
    const bound = vtcServiceBound({
      wIn: 1,
      wOut: 2,
      maxPromptTokens: 200,
      maxPredictedOutputTokens: 100,
      kvCapacityTokens: capacityTokens,
      minWeight: 1,
      exactPredictions: true,
    })
    const run = (policy: Policy) =>
      runFairness({
        policy,
        maxBypassMs: 0,
        users: [
          // Capacity serves 5 requests/s; both exceed a 2.5/s fair share, so both stay backlogged.
          { user: light, ratePerSecond: 4, promptTokens: 200, outputTokens: 100 },
          { user: heavy, ratePerSecond: 40, promptTokens: 200, outputTokens: 100 },
        ],
        capacityTokens,
        durationMs: 60_000,
        seed: 7,
      })
    const diffs = (result: Awaited<ReturnType<typeof run>>) =>
      result.samples
        .filter((s) => s.atMs >= 2_000)
        .map((s) => Math.abs((s.service.get('light') ?? 0) - (s.service.get('heavy') ?? 0)))
    const vtc = diffs(await run(createVtcPolicy({ users: [], options: {} })))
    const fifo = diffs(await run(createFifoPolicy({ users: [], options: {} })))
    expect(Math.max(...vtc)).toBeLessThanOrEqual(bound)
    // FIFO's difference grows with time: well past the bound by the end, and still growing.
    expect(fifo.at(-1)).toBeGreaterThan(3 * bound)
    expect(fifo.at(-1)).toBeGreaterThan(1.6 * (fifo[Math.floor(fifo.length / 2)] ?? 0))
    const vtcFinal = (await run(createVtcPolicy({ users: [], options: {} }))).service
    expect(jainIndex([...vtcFinal.values()])).toBeGreaterThan(0.99)
  })
})
