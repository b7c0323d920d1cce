import { describe, expect, it } from 'vitest'
import { createHarness, settle, user } from './harness.js'

describe('admission: admit when the KV cache has room, queue otherwise (fifo)', () => {
  it('admits at once when need fits and reserves prompt + predicted on the ledger', async () => {
    const h = createHarness({ capacities: [1_000] })
    const a = h.submit({ id: 'r1', promptTokens: 300, predictedOutputTokens: 200 })
    await settle()
    expect(a.status).toBe('admitted')
    expect(a.admission?.backendId).toBe('b0')
    expect(a.admission?.waitedMs).toBe(0)
    expect(h.ledger.reservedTokens()).toBe(500)
    expect(h.ledger.outstandingTokens('b0')).toBe(500)
    // An admission is not an ending: it carries no outcome, only where it went.
    expect(h.events).toMatchObject([{ kind: 'admitted', id: 'r1', backendId: 'b0', waitedMs: 0 }])
    expect(h.events[0]?.outcome).toBeUndefined()
  })

  it('queues what does not fit and admits it when a finish frees the ledger', async () => {
    const h = createHarness({ capacities: [1_000] })
    const a = h.submit({ id: 'a', promptTokens: 400, predictedOutputTokens: 200 })
    const b = h.submit({ id: 'b', promptTokens: 400, predictedOutputTokens: 200 })
    await settle()
    expect(a.status).toBe('admitted')
    expect(b.status).toBe('pending')
    expect(h.controller.queueDepth()).toBe(1)
    h.clock.advance(300)
    a.admission?.finish(150)
    await settle()
    expect(b.status).toBe('admitted')
    expect(b.admission?.waitedMs).toBe(300)
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.ledger.reservedTokens()).toBe(600)
  })

  it('subtracts headroom and polled usage: free − headroom − outstanding ≥ need', async () => {
    const h = createHarness({ capacities: [1_000], headroomRatio: 0.1 })
    h.backends[0]!.usedTokens = 400 // someone kvgate does not see
    const fits = h.submit({ id: 'fits', promptTokens: 250, predictedOutputTokens: 250 }) // 1000 − 400 − 100 = 500
    const waits = h.submit({ id: 'waits', promptTokens: 1, predictedOutputTokens: 0 })
    await settle()
    expect(fits.status).toBe('admitted')
    expect(waits.status).toBe('pending')
    // The next poll shows the outside load gone: room again, and the poll rings the dispatcher.
    h.backends[0]!.usedTokens = 0
    h.controller.dispatch()
    await settle()
    expect(waits.status).toBe('admitted')
  })

  it('sends each request to the backend with the most room', async () => {
    const h = createHarness({ capacities: [1_000, 2_000] })
    const first = h.submit({ id: 'x', promptTokens: 900, predictedOutputTokens: 0 })
    const second = h.submit({ id: 'y', promptTokens: 900, predictedOutputTokens: 0 })
    const third = h.submit({ id: 'z', promptTokens: 900, predictedOutputTokens: 0 })
    await settle()
    expect(first.admission?.backendId).toBe('b1') // room 2000 vs 1000
    expect(second.admission?.backendId).toBe('b1') // room 1100 vs 1000
    expect(third.admission?.backendId).toBe('b0') // room 200 vs 1000
    expect(h.ledger.reservedTokens('b0') + h.ledger.reservedTokens('b1')).toBe(2_700)
  })

  it('skips unusable backends and answers 503 when none is usable', async () => {
    const h = createHarness({ capacities: [1_000, 5_000] })
    h.backends[1]!.usable = false
    const a = h.submit({ id: 'a', promptTokens: 100 })
    await settle()
    expect(a.admission?.backendId).toBe('b0')
    h.backends[0]!.usable = false
    const b = h.submit({ id: 'b' })
    await settle()
    expect(b.status).toBe('rejected')
    expect(b.error?.statusCode).toBe(503)
    expect(b.error?.toBody()).toEqual({
      error: {
        message: 'No backend can serve requests: every backend is down or its metrics are stale',
        type: 'service_unavailable',
        param: null,
        code: 'no_backend_available',
      },
    })
  })

  it('caps a prediction larger than a whole cache and refuses a prompt larger than one (400)', async () => {
    const h = createHarness({ capacities: [1_000], headroomRatio: 0.1 })
    const big = h.submit({ id: 'big', promptTokens: 500, predictedOutputTokens: 5_000 })
    await settle()
    expect(big.status).toBe('admitted')
    expect(big.admission?.reservation.reservedTokens).toBe(900)
    big.admission?.finish(10)
    const huge = h.submit({ id: 'huge', promptTokens: 901, predictedOutputTokens: 0 })
    await settle()
    expect(huge.status).toBe('rejected')
    expect(huge.error?.statusCode).toBe(400)
    expect(huge.error?.code).toBe('request_exceeds_kv_capacity')
    expect(h.events.at(-1)?.outcome).toBe('invalid_request')
  })

  it('finish is idempotent: one release, one policy settle, one event', async () => {
    const h = createHarness()
    const a = h.submit({ id: 'a', user: user('bob') })
    await settle()
    const admission = a.admission!
    admission.firstToken()
    admission.recordTokens(150) // outgrows the prediction: 100 + 150 > 200
    expect(h.ledger.reservedTokens()).toBe(250)
    admission.finish(150)
    admission.finish(150)
    admission.finish(0, 'upstream_error')
    expect(admission.finished).toBe(true)
    expect(admission.reservation.released).toBe(true)
    expect(h.ledger.reservedTokens()).toBe(0)
    expect(h.ledger.liveCount()).toBe(0)
    expect(h.events.filter((e) => e.kind === 'finished')).toHaveLength(1)
  })
})
