import { describe, expect, it } from 'vitest'
import type { AdmissionFault } from '../../src/admission/index.js'
import type { Policy, PolicyRequest } from '../../src/policies/index.js'
import { createHarness, fifo, settle, user } from './harness.js'

/** The real fifo policy, throwing from `method` for the requests `throwsFor` picks. */
function faulty(method: 'onAdmit' | 'onFinish' | 'onTokens' | 'onEnqueue', throwsFor: (id: string) => boolean): Policy {
  const base = fifo()
  const wrap =
    (original: (request: PolicyRequest, ...rest: never[]) => void) =>
    (request: PolicyRequest, ...rest: never[]) => {
      if (throwsFor(request.id)) throw new Error(`policy bug in ${method}`)
      original.call(base, request, ...rest)
    }
  return { ...base, [method]: wrap(base[method] as (request: PolicyRequest, ...rest: never[]) => void) }
}

describe('admission: a policy that throws never leaves a promise unsettled or a request mislabelled', () => {
  it('onAdmit throwing for a queued request: it is answered 500 internal_error, the one behind it is admitted', async () => {
    const faults: AdmissionFault[] = []
    const h = createHarness({
      capacities: [1_000],
      policy: faulty('onAdmit', (id) => id === 'unlucky'),
      onFault: (fault) => faults.push(fault),
    })
    const running = h.submit({ id: 'running', promptTokens: 900, predictedOutputTokens: 100 })
    // Queued behind the running one; admitted by the dispatch that a finish runs, after the item was unlinked.
    const unlucky = h.submit({ id: 'unlucky', user: user('u'), promptTokens: 100, deadlineMs: 60_000 })
    const next = h.submit({ id: 'next', user: user('v'), promptTokens: 100, deadlineMs: 60_000 })
    await settle()
    expect([running.status, unlucky.status, next.status]).toEqual(['admitted', 'pending', 'pending'])

    running.admission?.finish(100)
    await settle()
    expect(unlucky.status).toBe('rejected')
    expect(unlucky.error?.statusCode).toBe(500)
    expect(unlucky.error?.outcome).toBe('internal_error')
    expect(unlucky.error?.toBody().error).toMatchObject({ code: 'internal_error', type: 'server_error' })
    expect(h.events.find((e) => e.id === 'unlucky')).toMatchObject({ kind: 'rejected', outcome: 'internal_error' })
    expect(faults).toMatchObject([{ component: 'policy', operation: 'onAdmit', requestId: 'unlucky' }])
    // The policy was told to forget it, so it does not hold its user's place.
    expect(next.status).toBe('admitted')
    next.admission?.finish(10)
    await settle()
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
    expect(h.ledger.reservedTokens()).toBe(0)
  })

  it('onAdmit throwing for a request that fits at once: its submit rejects 500, nothing is reserved', async () => {
    const h = createHarness({ capacities: [1_000], policy: faulty('onAdmit', () => true), onFault: () => {} })
    const a = h.submit({ id: 'a' })
    await settle()
    expect(a.status).toBe('rejected')
    expect(a.error?.outcome).toBe('internal_error')
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('onFinish throwing: the finish still releases, does not throw, and the queue behind moves on', async () => {
    const faults: AdmissionFault[] = []
    const h = createHarness({
      capacities: [1_000],
      policy: faulty('onFinish', (id) => id === 'first'),
      onFault: (fault) => faults.push(fault),
    })
    const first = h.submit({ id: 'first', promptTokens: 500, predictedOutputTokens: 500 })
    const second = h.submit({ id: 'second', promptTokens: 500, predictedOutputTokens: 500, deadlineMs: 60_000 })
    await settle()
    expect([first.status, second.status]).toEqual(['admitted', 'pending'])
    expect(() => first.admission?.finish(500)).not.toThrow()
    expect(first.admission?.reservation.released).toBe(true)
    expect(faults).toMatchObject([{ component: 'policy', operation: 'onFinish', requestId: 'first' }])
    // The dispatch is deferred past the finishing call; it still happens without a poll or a tick.
    expect(second.status).toBe('pending')
    await settle()
    expect(second.status).toBe('admitted')
    second.admission?.finish(500)
    await settle()
    expect(h.ledger.liveCount()).toBe(0)
    expect(h.events.filter((e) => e.kind === 'finished').map((e) => e.id)).toEqual(['first', 'second'])
  })

  it('onTokens throwing is contained: the stream goes on and its reservation still grows', async () => {
    const faults: AdmissionFault[] = []
    const h = createHarness({
      capacities: [1_000],
      policy: faulty('onTokens', () => true),
      onFault: (fault) => faults.push(fault),
    })
    const a = h.submit({ id: 'a', promptTokens: 100, predictedOutputTokens: 10 })
    await settle()
    expect(() => a.admission?.recordTokens(50)).not.toThrow()
    expect(a.admission?.reservation.reservedTokens).toBe(150)
    expect(faults.map((f) => f.operation)).toEqual(['onTokens'])
    a.admission?.finish(50)
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('onEnqueue throwing: the request is answered 500 at once and never queued', async () => {
    const h = createHarness({ capacities: [1_000], policy: faulty('onEnqueue', () => true), onFault: () => {} })
    h.submit({ id: 'hog', promptTokens: 1_000, predictedOutputTokens: 0 })
    const a = h.submit({ id: 'a' })
    await settle()
    expect(a.status).toBe('rejected')
    expect(a.error?.outcome).toBe('internal_error')
    expect(h.controller.queueDepth()).toBe(0)
  })

  it('candidates() throwing mid-walk: nothing is admitted, and the queue still drains by its deadlines', async () => {
    const base = fifo()
    let broken = false
    const faults: AdmissionFault[] = []
    const policy: Policy = {
      ...base,
      *candidates(nowMs) {
        if (broken) throw new Error('order broke')
        yield* base.candidates(nowMs)
      },
    }
    const h = createHarness({ capacities: [1_000], policy, onFault: (fault) => faults.push(fault) })
    const running = h.submit({ id: 'running', promptTokens: 1_000, predictedOutputTokens: 0 })
    const waiting = h.submit({ id: 'waiting', deadlineMs: 500 })
    await settle()
    broken = true
    running.admission?.finish(0)
    await settle()
    expect(waiting.status).toBe('pending')
    expect(faults.map((f) => f.operation)).toContain('candidates')
    h.clock.advance(600)
    await settle()
    expect(waiting.error?.code).toBe('queue_deadline_exceeded')
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('a throwing onEvent listener is reported as a listener fault, and admission goes on', async () => {
    const faults: AdmissionFault[] = []
    const h = createHarness({
      capacities: [1_000],
      onEvent: () => {
        throw new Error('metrics exploded')
      },
      onFault: (fault) => faults.push(fault),
    })
    const a = h.submit({ id: 'a' })
    await settle()
    expect(a.status).toBe('admitted')
    a.admission?.finish(1)
    expect(faults.map((f) => [f.component, f.operation])).toEqual([
      ['listener', 'onEvent'],
      ['listener', 'onEvent'],
    ])
    expect(h.ledger.liveCount()).toBe(0)
  })
})
