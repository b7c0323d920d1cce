import { describe, expect, it } from 'vitest'
import { extraRoom, FINAL_SIZE_RULES, peakProfile, type RoomRules } from '../../src/admission/index.js'
import { createLedger } from '../../src/ledger/index.js'
import { createHarness, settle, user } from './harness.js'

const PEAK: RoomRules = { reserveBy: 'peak', overcommit: { ratio: 0, requests: 0, maxBackendWaiting: 0 } }

/** A ledger with started requests: [prompt, predicted output, generated so far]. */
function running(...requests: [number, number, number][]) {
  const ledger = createLedger()
  requests.forEach(([prompt, predicted, generated], i) => {
    const r = ledger.reserve({
      backendId: 'b',
      requestId: `r${i}`,
      promptTokens: prompt,
      predictedOutputTokens: predicted,
    })
    r.markStarted()
    r.addGenerated(generated)
  })
  return ledger
}

describe('room rules: reserve by the running set’s peak', () => {
  it('finds the peak just before a request ends: requests that end early free their KV for later growth', () => {
    // A holds 100 and grows 100 more; B holds 100 and grows 300 more. Final sizes sum to 600; but A ends at
    // step 100 (then 200 + 200 held = 400), B at 300 (alone: 400). The peak is 400.
    const ledger = running([100, 100, 0], [100, 300, 0])
    expect(peakProfile(ledger.live('b'), true)).toEqual({ savings: 200, growth: 200, notStarted: 0 })
    expect(extraRoom(ledger.live('b'), PEAK, 0)).toEqual({ tokens: 200, spill: false })
  })

  it('saves nothing when everything ends together, and counts what has not started at its final size', () => {
    expect(peakProfile(running([100, 100, 0], [100, 100, 0]).live('b'), true).savings).toBe(0)
    const ledger = running([100, 100, 0], [100, 300, 0])
    ledger.reserve({ backendId: 'b', requestId: 'queued-in-vllm', promptTokens: 500, predictedOutputTokens: 500 })
    const profile = peakProfile(ledger.live('b'), true)
    expect(profile.savings).toBe(200)
    expect(profile.notStarted).toBe(1)
  })

  it('treats a request that outgrew its prediction as growing until the end, never as saving', () => {
    // C outgrew its prediction (100 predicted, 150 generated): it holds 250 and keeps growing.
    const ledger = running([100, 100, 0], [100, 300, 0], [100, 100, 150])
    const profile = peakProfile(ledger.live('b'), true)
    // At step 300 (just before B ends): B 400 + C 250 + 300 = 950, more than the 850 reserved: no saving.
    expect(profile.savings).toBe(0)
  })

  it('adds nothing under the final-size rule, and lends only while the backend queue is short', () => {
    const ledger = running([100, 100, 0], [100, 300, 0])
    expect(extraRoom(ledger.live('b'), FINAL_SIZE_RULES, 0)).toEqual({ tokens: 0, spill: false })
    const lend: RoomRules = { reserveBy: 'peak', overcommit: { ratio: 0.5, requests: 1, maxBackendWaiting: 1 } }
    // Growth still reserved after the peak's savings: 400 − 200 = 200; half is lent.
    expect(extraRoom(ledger.live('b'), lend, 1)).toEqual({ tokens: 300, spill: true })
    expect(extraRoom(ledger.live('b'), lend, 2)).toEqual({ tokens: 200, spill: false })
    expect(extraRoom(ledger.live('b'), lend, undefined)).toEqual({ tokens: 200, spill: false })
  })
})

describe('room rules in the queue', () => {
  it('peak admits a request the final-size rule holds back; both end with the ledger at 0', async () => {
    for (const reserveBy of ['final', 'peak'] as const) {
      const h = createHarness({ capacities: [1_000], reserveBy })
      // Two started requests holding 100 each, with finals of 200 and 400: their peak is 400 (see above).
      const a = h.submit({ id: 'a', promptTokens: 100, predictedOutputTokens: 100, user: user('a') })
      const b = h.submit({ id: 'b', promptTokens: 100, predictedOutputTokens: 300, user: user('b') })
      await settle()
      a.admission?.firstToken()
      b.admission?.firstToken()
      h.pollAll()
      // Room by final sizes: 1,000 − 600 = 400; by the peak (400): 600.
      const c = h.submit({ id: 'c', promptTokens: 250, predictedOutputTokens: 250, user: user('c') })
      await settle()
      expect(c.status).toBe(reserveBy === 'peak' ? 'admitted' : 'pending')
      for (const t of [a, b]) t.admission?.finish(0)
      await settle()
      // Under either rule it is admitted once the others end.
      expect(c.status).toBe('admitted')
      c.admission?.finish(0)
      await settle()
      expect(h.ledger.reservedTokens()).toBe(0)
    }
  })

  it('spills one request to wait in the backend queue, and no more while it has not started', async () => {
    const h = createHarness({
      capacities: [1_000],
      overcommit: { ratio: 0, requests: 1, maxBackendWaiting: 0 },
    })
    h.backends[0]!.waiting = 0
    const big = h.submit({ id: 'big', promptTokens: 500, predictedOutputTokens: 400 })
    const spilled = h.submit({ id: 'spilled', promptTokens: 300, predictedOutputTokens: 300 })
    const held = h.submit({ id: 'held', promptTokens: 300, predictedOutputTokens: 300 })
    await settle()
    // `big` fits; `spilled` does not, but one not-started request may go beyond the room... and `big` has not
    // started either, so the budget is spent: only one is spilled once `big` starts.
    expect([big.status, spilled.status, held.status]).toEqual(['admitted', 'pending', 'pending'])
    big.admission?.firstToken()
    h.pollAll()
    await settle()
    expect([spilled.status, held.status]).toEqual(['admitted', 'pending'])
    // A backend queue longer than allowed stops the spilling.
    spilled.admission?.firstToken()
    h.backends[0]!.waiting = 3
    h.pollAll()
    await settle()
    expect(held.status).toBe('pending')
    for (const t of [big, spilled]) t.admission?.finish(0)
    await settle()
    expect(held.status).toBe('admitted')
    held.admission?.finish(0)
    await settle()
    expect(h.ledger.reservedTokens()).toBe(0)
  })
})

describe('the poll lag after a finish', () => {
  it('counts a finished request’s KV as free before the next poll, and only until a poll completes', () => {
    const ledger = createLedger()
    const r = ledger.reserve({ backendId: 'b', requestId: 'r', promptTokens: 300, predictedOutputTokens: 100 })
    r.markStarted()
    r.addGenerated(50)
    ledger.completePoll(ledger.beginPoll('b')) // the poll saw 350 of it
    expect(ledger.freedTokens('b')).toBe(0)
    r.release('completed')
    expect(ledger.freedTokens('b')).toBe(350)
    // A poll already in flight at the release may or may not have seen the blocks: it clears it all the same.
    const inFlight = ledger.beginPoll('b')
    ledger.completePoll(inFlight)
    expect(ledger.freedTokens('b')).toBe(0)
  })
})
