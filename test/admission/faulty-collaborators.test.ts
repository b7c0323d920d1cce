import { describe, expect, it, vi } from 'vitest'
import type { Policy } from '../../src/policies/index.js'
import { createHarness, fifo, settle, user } from './harness.js'

describe('admission: a faulty collaborator cannot make the ledger leak', () => {
  it('a throwing onEvent handler neither blocks admission nor strands a reservation', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    try {
      const h = createHarness({
        capacities: [1_000],
        onEvent: () => {
          throw new Error('metrics exploded')
        },
      })
      const a = h.submit({ id: 'a', promptTokens: 500, predictedOutputTokens: 500 })
      const b = h.submit({ id: 'b', promptTokens: 500, predictedOutputTokens: 500 })
      await settle()
      expect(a.status).toBe('admitted')
      expect(b.status).toBe('pending')
      a.admission?.finish(10)
      await settle()
      expect(b.status).toBe('admitted')
      b.admission?.finish(10)
      expect(h.ledger.liveCount()).toBe(0)
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('metrics exploded'))
    } finally {
      warn.mockRestore()
    }
  })

  it('a policy that throws while a request is enqueued rejects that request and leaves nothing queued', async () => {
    const base = fifo()
    let broken = false
    const policy: Policy = {
      ...base,
      checkQuota(request, nowMs) {
        if (broken) throw new Error('policy bug')
        return base.checkQuota(request, nowMs)
      },
    }
    const h = createHarness({ capacities: [1_000], policy })
    broken = true
    const a = h.submit({ id: 'a', user: user('x') })
    await settle()
    expect(a.status).toBe('rejected')
    expect(h.controller.queueDepth()).toBe(0)
    broken = false
    h.controller.dispatch()
    expect(h.ledger.liveCount()).toBe(0)
  })

  it('caps the predicted wait at an hour when nothing drains', async () => {
    const h = createHarness({ capacities: [1_000] })
    h.submit({ id: 'hog', promptTokens: 1_000, predictedOutputTokens: 0 })
    // A measured rate of ~0: a long KV-bound wait with nothing admitted.
    const queued = Array.from({ length: 3 }, (_, i) => h.submit({ id: `q${i}`, deadlineMs: 600_000 }))
    h.clock.advance(1_500) // first window: nothing admitted
    h.controller.dispatch()
    await settle()
    expect(queued.every((t) => t.status === 'pending')).toBe(true)
    expect(h.controller.stats().drainTokensPerSecond).toBe(0)
    expect(h.controller.predictWaitMs(user('alice'), 200)).toBe(3_600_000)
  })
})
