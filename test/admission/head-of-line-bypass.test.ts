import { describe, expect, it } from 'vitest'
import { createHarness, settle, user } from './harness.js'

describe('admission: bounded bypass of a head that does not fit (fifo)', () => {
  it('admits smaller requests past a big head, but only for maxBypassMs; then the big one goes first', async () => {
    const h = createHarness({ capacities: [1_000], maxBypassMs: 2_000 })
    const running = h.submit({
      id: 'running',
      user: user('a'),
      promptTokens: 600,
      predictedOutputTokens: 0,
      deadlineMs: 60_000,
    })
    const big = h.submit({
      id: 'big',
      user: user('b'),
      promptTokens: 800,
      predictedOutputTokens: 0,
      deadlineMs: 60_000,
    })
    const small1 = h.submit({
      id: 'small1',
      user: user('c'),
      promptTokens: 100,
      predictedOutputTokens: 0,
      deadlineMs: 60_000,
    })
    await settle()
    // Work-conserving: the big head does not fit (room 400), the small one behind it does.
    expect([big.status, small1.status]).toEqual(['pending', 'admitted'])
    expect(h.controller.queued()[0]).toMatchObject({ id: 'big', bypassedForMs: 0 })

    h.clock.advance(1_500)
    const small2 = h.submit({
      id: 'small2',
      user: user('d'),
      promptTokens: 100,
      predictedOutputTokens: 0,
      deadlineMs: 60_000,
    })
    await settle()
    expect(small2.status).toBe('admitted') // bypassed for 1.5 s < 2 s

    h.clock.advance(500)
    const small3 = h.submit({
      id: 'small3',
      user: user('e'),
      promptTokens: 100,
      predictedOutputTokens: 0,
      deadlineMs: 60_000,
    })
    await settle()
    expect(small3.status).toBe('pending') // the big head has waited 2 s: nothing more passes it
    expect(h.controller.queued()[0]).toMatchObject({ id: 'big', bypassedForMs: 2_000 })

    // Room frees: 1000 − 100 − 100 = 800 after the running request ends; the big head takes it first.
    running.admission?.finish(0)
    await settle()
    expect(big.status).toBe('admitted')
    expect(small3.status).toBe('pending')
    small1.admission?.finish(0)
    await settle()
    expect(small3.status).toBe('admitted')
  })

  it('is strict head-of-line with maxBypassMs = 0', async () => {
    const h = createHarness({ capacities: [1_000], maxBypassMs: 0 })
    h.submit({ id: 'running', user: user('a'), promptTokens: 600, predictedOutputTokens: 0 })
    const big = h.submit({ id: 'big', user: user('b'), promptTokens: 800, predictedOutputTokens: 0 })
    const small = h.submit({ id: 'small', user: user('c'), promptTokens: 100, predictedOutputTokens: 0 })
    await settle()
    expect([big.status, small.status]).toEqual(['pending', 'pending'])
  })

  it('never lets a head that cannot fit on any usable backend hold the others', async () => {
    const h = createHarness({ capacities: [1_000, 4_000], maxBypassMs: 0 })
    h.backends[1]!.usable = false // the big backend is stale
    const huge = h.submit({
      id: 'huge',
      user: user('b'),
      promptTokens: 3_000,
      predictedOutputTokens: 0,
      deadlineMs: 60_000,
    })
    const small = h.submit({ id: 'small', user: user('c'), promptTokens: 100, predictedOutputTokens: 0 })
    await settle()
    expect(huge.status).toBe('pending')
    expect(small.status).toBe('admitted')
    h.backends[1]!.usable = true
    h.controller.dispatch() // the next poll
    await settle()
    expect(huge.admission?.backendId).toBe('b1')
  })

  it("keeps a user's own requests in FIFO order", async () => {
    const h = createHarness({ capacities: [1_000] })
    h.submit({ id: 'running', user: user('a'), promptTokens: 600, predictedOutputTokens: 0 })
    const first = h.submit({ id: 'first', user: user('b'), promptTokens: 800, predictedOutputTokens: 0 })
    const second = h.submit({ id: 'second', user: user('b'), promptTokens: 100, predictedOutputTokens: 0 })
    await settle()
    // Bypass is between users' heads: b's small second request does not overtake b's own first one.
    expect([first.status, second.status]).toEqual(['pending', 'pending'])
  })
})
