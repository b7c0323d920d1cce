import { describe, expect, it } from 'vitest'
import { policyFactories } from '../../src/policies/index.js'
import { createHarness, drainBacklog, settle, user, type Harness, type Tracked } from './harness.js'

const vtc = () => policyFactories['vtc']!({ users: [], options: {} })

/** A backlog draining at ~1,000 tokens/s for 4 s, so the drain rate is measured. */
const measuredBacklog = (h: Harness): Promise<Tracked[]> => drainBacklog(h, 'heavy', 'w')

describe('admission: immediate 429s (fifo)', () => {
  it('answers queue_full at once when the bounded queue is full', async () => {
    const h = createHarness({ capacities: [1_000], maxQueueLength: 2 })
    const running = h.submit({ id: 'running', promptTokens: 1_000, predictedOutputTokens: 0 })
    const q1 = h.submit({ id: 'q1' })
    const q2 = h.submit({ id: 'q2' })
    const full = h.submit({ id: 'full' })
    await settle()
    expect([running.status, q1.status, q2.status]).toEqual(['admitted', 'pending', 'pending'])
    expect(full.status).toBe('rejected')
    expect(full.error?.statusCode).toBe(429)
    expect(full.error?.code).toBe('queue_full')
    expect(full.error?.message).toMatch(
      /^The admission queue is full \(2 waiting\)\. Please try again in [\d.]+s\. \(kvgate reason: queue_full\)$/,
    )
    expect(full.error?.headers['x-kvgate-reject-reason']).toBe('queue_full')
    expect(Number(full.error?.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(h.events.find((e) => e.id === 'full')).toMatchObject({ outcome: 'rejected_queue_full', waitedMs: 0 })
    expect(h.controller.queueDepth()).toBe(2)
    // Room in the queue again after one leaves.
    running.admission?.finish(0)
    await settle()
    expect(h.submit({ id: 'fits-now' }).status).toBe('pending')
  })

  it('rejects early when the measured wait already exceeds the deadline, and only then', async () => {
    const h = createHarness({ capacities: [1_000], earlyReject: true, maxQueueLength: 1_000 })
    await measuredBacklog(h)
    for (let i = 0; i < 20; i++)
      h.submit({ id: `h${i}`, user: user('heavy'), promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 600_000 })
    await settle()
    // heavy's own next request waits behind ~11,000 of its tokens (~11 s at ~1,000 tokens/s).
    const hopeless = h.submit({
      id: 'hopeless',
      user: user('heavy'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 2_000,
    })
    await settle()
    expect(hopeless.status).toBe('rejected')
    expect(hopeless.error?.statusCode).toBe(429)
    expect(hopeless.error?.code).toBe('predicted_wait_exceeds_deadline')
    expect(hopeless.error?.message).toMatch(
      /^The predicted wait of [\d.]+s exceeds the deadline of 2s\. Please try again in [\d.]+s\. \(kvgate reason: predicted_wait_exceeds_deadline\)$/,
    )
    expect(hopeless.error?.headers['x-kvgate-reject-reason']).toBe('predicted_wait_exceeds_deadline')
    expect(h.events.find((e) => e.id === 'hopeless')?.outcome).toBe('rejected_early')
    // Under fifo a light user is behind the heavy backlog too, and hears so at once rather than at its deadline.
    const light = h.submit({
      id: 'light',
      user: user('light'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 2_000,
    })
    // And a patient heavy request is queued.
    const patient = h.submit({
      id: 'patient',
      user: user('heavy'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 600_000,
    })
    await settle()
    expect(light.error?.code).toBe('predicted_wait_exceeds_deadline')
    expect(Number(light.error?.headers['retry-after-ms'])).toBeGreaterThan(10_000)
    expect(patient.status).toBe('pending')
    expect(h.ledger.reservedTokens()).toBe(1_000) // nothing reserved for the rejected ones
  })

  it("under vtc a light user is not behind a heavy user's backlog: it waits, it is not turned away", async () => {
    const h = createHarness({ capacities: [1_000], earlyReject: true, maxQueueLength: 1_000, policy: vtc() })
    await measuredBacklog(h)
    for (let i = 0; i < 20; i++)
      h.submit({ id: `h${i}`, user: user('heavy'), promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 600_000 })
    await settle()
    const hopeless = h.submit({ id: 'hopeless', user: user('heavy'), promptTokens: 250, deadlineMs: 2_000 })
    const light = h.submit({
      id: 'light',
      user: user('light'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 2_000,
    })
    await settle()
    expect(hopeless.error?.code).toBe('predicted_wait_exceeds_deadline')
    expect(light.status).toBe('pending')
  })

  it('answers a quota that cannot clear before the deadline at once, with the quota reset as retry-after', async () => {
    const capped = { name: 'capped', weight: 1, tokensPerMinute: 1_000 }
    const tpm = policyFactories['tpm']!({ users: [capped], options: {} })
    const h = createHarness({ capacities: [10_000], earlyReject: true, policy: tpm })
    const first = h.submit({ id: 'first', user: capped, promptTokens: 500, predictedOutputTokens: 400 })
    await settle()
    expect(first.status).toBe('admitted')
    h.clock.advance(8_000)
    // 900 of 1,000 used; 600 more fit only when the first charge leaves the window, 52 s from now.
    const over = h.submit({
      id: 'over',
      user: capped,
      promptTokens: 300,
      predictedOutputTokens: 300,
      deadlineMs: 3_000,
    })
    await settle()
    expect(over.error?.code).toBe('quota_exceeded')
    expect(over.error?.headers['retry-after-ms']).toBe('52000')
    expect(over.error?.headers['x-ratelimit-limit-tokens']).toBe('1000')
    expect(over.error?.headers['x-ratelimit-remaining-tokens']).toBe('100')
    expect(h.events.find((e) => e.id === 'over')).toMatchObject({ kind: 'rejected', waitedMs: 0, retryAfterMs: 52_000 })
    // A deadline long enough for the reset: it waits for its quota instead.
    const patient = h.submit({
      id: 'patient',
      user: capped,
      promptTokens: 300,
      predictedOutputTokens: 300,
      deadlineMs: 60_000,
    })
    await settle()
    expect(patient.status).toBe('pending')
    h.clock.advance(52_000)
    h.controller.dispatch()
    await settle()
    expect(patient.status).toBe('admitted')
  })

  it('never rejects early before the drain rate has been measured (a first burst is not turned away)', async () => {
    const h = createHarness({ capacities: [1_000], earlyReject: true })
    const burst = Array.from({ length: 50 }, (_, i) =>
      h.submit({ id: `b${i}`, promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 1 }),
    )
    await settle()
    expect(burst.filter((t) => t.status === 'rejected')).toHaveLength(0)
    expect(burst.filter((t) => t.status === 'admitted')).toHaveLength(2)
  })

  it('does not reject early when earlyReject is off', async () => {
    const h = createHarness({ capacities: [1_000], earlyReject: false, maxQueueLength: 1_000 })
    await measuredBacklog(h)
    for (let i = 0; i < 20; i++)
      h.submit({ id: `h${i}`, user: user('heavy'), promptTokens: 250, predictedOutputTokens: 250, deadlineMs: 600_000 })
    const waits = h.submit({
      id: 'waits',
      user: user('heavy'),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 2_000,
    })
    await settle()
    expect(waits.status).toBe('pending')
  })
})
