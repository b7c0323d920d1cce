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
      expect(t.error?.toBody().error).toEqual({ message: 'kvgate is shutting down.', type: 'service_unavailable', param: null, code: 'shutting_down' })
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
