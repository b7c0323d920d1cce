import { describe, expect, it } from 'vitest'
import { MAX_EXPIRIES_PER_TICK } from '../../src/admission/index.js'
import { createHarness, settle, steppedClock, user } from './harness.js'

describe('admission: the end of a capped deadline sweep', () => {
  it('dispatches what waited behind the sweep even when nothing was left for its continuation to expire', async () => {
    const { manual, clock, continuations } = steppedClock()
    const h = createHarness({ clock, capacities: [1_000], maxQueueLength: 10_000, deadlineTickMs: 50 })
    const running = h.submit({ id: 'running', promptTokens: 500, predictedOutputTokens: 500, deadlineMs: 600_000 })
    // One more than a sweep takes at once; the last one's client can still leave.
    const leaving = new AbortController()
    const queued = Array.from({ length: MAX_EXPIRIES_PER_TICK + 1 }, (_, i) =>
      h.submit({
        id: `q${i}`,
        user: user(`u${i % 10}`),
        deadlineMs: 1_000,
        ...(i === MAX_EXPIRIES_PER_TICK ? { signal: leaving.signal } : {}),
      }),
    )
    await settle()
    expect(running.status).toBe('admitted')

    manual.advance(1_000)
    await settle()
    expect(continuations).toHaveLength(1)
    // While the sweep is paused: the one expired request left is cancelled by its client, room appears, and a
    // fresh request arrives. Every dispatch in between defers to the sweep's continuation.
    leaving.abort()
    running.admission?.finish(0)
    const fresh = h.submit({ id: 'fresh', deadlineMs: 60_000 })
    await settle()
    expect(fresh.status).toBe('pending')

    continuations.shift()?.()
    await settle()
    expect(queued.every((t) => t.status === 'rejected')).toBe(true)
    // The continuation had nothing to expire, but the dispatches it held back must still happen.
    expect(fresh.status).toBe('admitted')
    fresh.admission?.finish(0)
    expect(h.ledger.reservedTokens()).toBe(0)
    expect(h.controller.queueDepth()).toBe(0)
  })
})
