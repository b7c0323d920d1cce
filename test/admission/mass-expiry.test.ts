import { describe, expect, it } from 'vitest'
import { MAX_EXPIRIES_PER_TICK } from '../../src/admission/index.js'
import { createHarness, settle, steppedClock, user, type Harness, type Tracked } from './harness.js'

const QUEUED = 5_000
const USERS = 50

/** A full backend and QUEUED requests over USERS users, all due to expire together at 1,000 ms. */
async function massBacklog(h: Harness): Promise<{ running: Tracked; queued: Tracked[] }> {
  const running = h.submit({ id: 'running', promptTokens: 500, predictedOutputTokens: 500, deadlineMs: 600_000 })
  const queued = Array.from({ length: QUEUED }, (_, i) =>
    h.submit({ id: `q${i}`, user: user(`u${i % USERS}`), deadlineMs: 1_000 }),
  )
  await settle()
  expect(running.status).toBe('admitted')
  expect(h.controller.queueDepth()).toBe(QUEUED)
  return { running, queued }
}

describe('admission: a mass deadline expiry', () => {
  it('rejects all 5,000 requests that time out together with a stackless 429, none lost, ledger 0', async () => {
    const h = createHarness({ capacities: [1_000], maxQueueLength: 10_000, deadlineTickMs: 50 })
    const { running, queued } = await massBacklog(h)
    h.clock.advance(1_000) // the manual clock runs the sweep's continuations inside advance()
    await settle()
    expect(queued.filter((t) => t.status === 'rejected')).toHaveLength(QUEUED)
    for (const t of queued) {
      expect(t.error?.statusCode).toBe(429)
      expect(t.error?.code).toBe('queue_deadline_exceeded')
      expect(t.error?.stack ?? '').not.toMatch(/\n\s+at /) // an outcome, not a bug: no stack captured
    }
    expect(h.events.filter((e) => e.kind === 'rejected' && e.outcome === 'rejected_deadline')).toHaveLength(QUEUED)
    expect(h.controller.queueDepth()).toBe(0)
    running.admission?.finish(1_000)
    expect(h.ledger.reservedTokens()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
    expect(h.clock.pendingTimers()).toBe(1) // only the deadline tick is left
  })

  it(`rejects at most ${MAX_EXPIRIES_PER_TICK} per turn and admits nothing expired while the sweep goes on`, async () => {
    const { manual, clock, continuations } = steppedClock()
    const h = createHarness({ clock, capacities: [1_000], maxQueueLength: 10_000, deadlineTickMs: 50 })
    const { running, queued } = await massBacklog(h)
    const rejected = () => queued.filter((t) => t.status === 'rejected').length

    manual.advance(1_000)
    await settle()
    expect(rejected()).toBe(MAX_EXPIRIES_PER_TICK)
    expect(continuations).toHaveLength(1)

    // Room appears mid-sweep: the dispatcher must not admit a request already past its deadline.
    running.admission?.finish(0)
    const fresh = h.submit({ id: 'fresh', deadlineMs: 60_000 })
    manual.advance(50) // a tick mid-sweep leaves the sweep to its continuation
    await settle()
    expect(queued.some((t) => t.status === 'admitted')).toBe(false)
    expect(fresh.status).toBe('pending')
    expect(rejected()).toBe(MAX_EXPIRIES_PER_TICK)

    for (let turn = 2; continuations.length > 0; turn++) {
      continuations.shift()?.()
      await settle()
      expect(rejected()).toBe(Math.min(QUEUED, turn * MAX_EXPIRIES_PER_TICK))
    }
    expect(rejected()).toBe(QUEUED)
    expect(queued.every((t) => t.error?.statusCode === 429)).toBe(true)
    // The sweep done, the dispatcher runs again and the request that was still in time gets the room.
    expect(fresh.status).toBe('admitted')
    expect(h.controller.queueDepth()).toBe(0)
    fresh.admission?.finish(0)
    expect(h.ledger.reservedTokens()).toBe(0)
  })

  it('stops a sweep under way when the controller closes, answering the rest shutting_down', async () => {
    const { manual, clock, continuations } = steppedClock()
    const h = createHarness({ clock, capacities: [1_000], maxQueueLength: 10_000 })
    const { queued } = await massBacklog(h)
    manual.advance(1_000)
    await settle()
    expect(continuations).toHaveLength(1)
    h.controller.close()
    continuations.shift()?.() // a continuation that fires after close finds nothing left to do
    await settle()
    const codes = new Map<string, number>()
    for (const t of queued) codes.set(t.error?.code ?? t.status, (codes.get(t.error?.code ?? t.status) ?? 0) + 1)
    expect(Object.fromEntries(codes)).toEqual({
      queue_deadline_exceeded: MAX_EXPIRIES_PER_TICK,
      shutting_down: QUEUED - MAX_EXPIRIES_PER_TICK,
    })
    expect(h.controller.queueDepth()).toBe(0)
  })
})
