import { describe, expect, it } from 'vitest'
import type { Policy, PolicyRequest } from '../../src/policies/index.js'
import { createHarness, fifo, settle, user } from './harness.js'

/** The real fifo policy, recording what it is told. */
function recording(): { policy: Policy; enqueued: string[]; finished: string[] } {
  const base = fifo()
  const enqueued: string[] = []
  const finished: string[] = []
  const policy: Policy = {
    ...base,
    onEnqueue(request: PolicyRequest, nowMs: number) {
      enqueued.push(request.id)
      base.onEnqueue(request, nowMs)
    },
    onFinish(request: PolicyRequest, completionTokens: number, nowMs: number) {
      finished.push(request.id)
      base.onFinish(request, completionTokens, nowMs)
    },
  }
  return { policy, enqueued, finished }
}

describe('admission: policy reload and shutdown', () => {
  it('setPolicy moves queued requests into the new policy in arrival order and keeps serving them', async () => {
    const old = recording()
    const h = createHarness({ capacities: [1_000], policy: old.policy })
    const running = h.submit({ id: 'running', user: user('a'), promptTokens: 1_000, predictedOutputTokens: 0 })
    const x = h.submit({ id: 'x', user: user('b'), promptTokens: 500, predictedOutputTokens: 0 })
    const y = h.submit({ id: 'y', user: user('c'), promptTokens: 500, predictedOutputTokens: 0 })
    const z = h.submit({ id: 'z', user: user('b'), promptTokens: 500, predictedOutputTokens: 0 })
    await settle()
    const next = recording()
    h.controller.setPolicy(next.policy)
    expect(next.enqueued).toEqual(['x', 'y', 'z'])
    expect(h.controller.queueDepth()).toBe(3)
    // The admitted request settles with the policy that charged it.
    running.admission?.finish(0)
    expect(old.finished).toEqual(['running'])
    expect(next.finished).toEqual([])
    await settle()
    expect([x.status, y.status, z.status]).toEqual(['admitted', 'admitted', 'pending'])
    x.admission?.finish(0)
    await settle()
    expect(z.status).toBe('admitted')
    expect(next.finished).toEqual(['x'])
  })

  it('close() rejects everything queued with shutting_down, stops the tick and refuses new work', async () => {
    const h = createHarness({ capacities: [1_000] })
    const running = h.submit({ id: 'running', promptTokens: 1_000, predictedOutputTokens: 0 })
    const queued = [h.submit({ id: 'q1' }), h.submit({ id: 'q2', user: user('bob') })]
    await settle()
    expect(h.clock.pendingTimers()).toBe(1)
    h.controller.close()
    await settle()
    for (const t of queued) {
      expect(t.error?.statusCode).toBe(503)
      expect(t.error?.toBody().error).toEqual({
        message: 'kvgate is shutting down.',
        type: 'service_unavailable',
        param: null,
        code: 'shutting_down',
      })
    }
    expect(h.events.filter((e) => e.outcome === 'rejected_unavailable').map((e) => e.id)).toEqual(['q1', 'q2'])
    expect(h.clock.pendingTimers()).toBe(0)
    expect(h.controller.queueDepth()).toBe(0)
    const late = h.submit({ id: 'late' })
    await settle()
    expect(late.error?.code).toBe('shutting_down')
    // In-flight streams finish normally and the ledger drains to 0.
    running.admission?.finish(10)
    expect(h.ledger.reservedTokens()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
  })
})

describe('admission: tuning reloaded in place', () => {
  it('configure() changes headroom, bypass, queue bound and the tick without touching queued requests', async () => {
    const h = createHarness({ capacities: [1_000], headroomRatio: 0.5, maxQueueLength: 10, deadlineTickMs: 50 })
    const a = h.submit({ id: 'a', promptTokens: 300, predictedOutputTokens: 0, deadlineMs: 60_000 })
    const b = h.submit({ id: 'b', promptTokens: 300, predictedOutputTokens: 0, deadlineMs: 60_000 })
    await settle()
    expect([a.status, b.status]).toEqual(['admitted', 'pending']) // room 1000 − 500 − 300 = 200
    h.controller.configure({ headroomRatio: 0.1 }) // room 1000 − 100 − 300 = 600: b fits now
    await settle()
    expect(b.status).toBe('admitted')

    h.controller.configure({ maxQueueLength: 1 })
    h.submit({ id: 'c', promptTokens: 400, predictedOutputTokens: 0, deadlineMs: 60_000 })
    const d = h.submit({ id: 'd', promptTokens: 400, predictedOutputTokens: 0, deadlineMs: 60_000 })
    await settle()
    expect(d.error?.code).toBe('queue_full')

    h.controller.configure({ deadlineTickMs: 1_000, maxQueueLength: 10 })
    expect(h.clock.pendingTimers()).toBe(1) // the old tick is gone
    const e = h.submit({ id: 'e', user: user('eve'), promptTokens: 400, predictedOutputTokens: 0, deadlineMs: 100 })
    h.clock.advance(999)
    await settle()
    expect(e.status).toBe('pending') // past its deadline, but nothing rang the dispatcher and the tick is slow
    h.clock.advance(1)
    await settle()
    expect(e.error?.code).toBe('queue_deadline_exceeded')

    expect(() => h.controller.configure({ headroomRatio: 1 })).toThrow(RangeError)
  })
})
