import { describe, expect, it } from 'vitest'
import { createHarness, settle, user } from './harness.js'

describe('admission: a client that goes away while queued (fifo)', () => {
  it('removes the item, rejects 499 request_cancelled and leaves the ledger at 0', async () => {
    const h = createHarness({ capacities: [1_000] })
    const running = h.submit({ id: 'running', promptTokens: 1_000, predictedOutputTokens: 0 })
    const controller = new AbortController()
    const queued = h.submit({ id: 'queued', signal: controller.signal })
    await settle()
    expect(h.controller.queueDepth()).toBe(1)
    h.clock.advance(120)
    controller.abort()
    await settle()
    expect(queued.status).toBe('rejected')
    expect(queued.error?.statusCode).toBe(499)
    expect(queued.error?.toBody()).toEqual({
      error: {
        message: 'The client closed the request while it waited for admission.',
        type: 'invalid_request_error',
        param: null,
        code: 'request_cancelled',
      },
    })
    expect(h.events.find((e) => e.id === 'queued')).toMatchObject({
      kind: 'cancelled',
      outcome: 'cancelled_queued',
      waitedMs: 120,
    })
    expect(h.controller.queueDepth()).toBe(0)
    expect(h.controller.queued()).toEqual([])
    running.admission?.finish(0)
    expect(h.ledger.reservedTokens()).toBe(0)
    expect(h.ledger.outstandingTokens()).toBe(0)
    // The policy forgot it too: the next request is admitted, not held behind a ghost.
    const next = h.submit({ id: 'next' })
    await settle()
    expect(next.status).toBe('admitted')
  })

  it('rejects at once a request whose client already left', async () => {
    const h = createHarness()
    const controller = new AbortController()
    controller.abort()
    const gone = h.submit({ id: 'gone', signal: controller.signal })
    await settle()
    expect(gone.error?.code).toBe('request_cancelled')
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('ignores an abort after admission (the proxy ends that request with finish)', async () => {
    const h = createHarness()
    const controller = new AbortController()
    const admitted = h.submit({ id: 'a', signal: controller.signal })
    await settle()
    controller.abort()
    await settle()
    expect(admitted.status).toBe('admitted')
    expect(h.ledger.liveCount()).toBe(1)
    admitted.admission?.finish(3, 'client_abort')
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('lets the others through when the aborted item was the head they were held behind', async () => {
    const h = createHarness({ capacities: [1_000], maxBypassMs: 0 })
    h.submit({ id: 'running', user: user('a'), promptTokens: 600, predictedOutputTokens: 0 })
    const controller = new AbortController()
    const big = h.submit({
      id: 'big',
      user: user('b'),
      promptTokens: 800,
      predictedOutputTokens: 0,
      signal: controller.signal,
    })
    const small = h.submit({ id: 'small', user: user('c'), promptTokens: 100, predictedOutputTokens: 0 })
    await settle()
    expect([big.status, small.status]).toEqual(['pending', 'pending'])
    controller.abort()
    await settle()
    expect(small.status).toBe('admitted')
  })
})
