import { describe, expect, it } from 'vitest'
import { createLedger } from '../../src/ledger/index.js'

describe('ledger: reconciliation with polled usage', () => {
  it('counts a reservation in full until a poll that began after its first token completes', () => {
    const ledger = createLedger()
    const r = ledger.reserve({ backendId: 'b', requestId: 'r', promptTokens: 500, predictedOutputTokens: 200 })
    expect(ledger.outstandingTokens('b')).toBe(700)

    // A poll that began before the first token sees nothing of it: vLLM may not have allocated it yet.
    ledger.completePoll(ledger.beginPoll('b'))
    expect(ledger.outstandingTokens('b')).toBe(700)

    r.markStarted()
    r.addGenerated(50)
    const mark = ledger.beginPoll('b') // snapshot: 500 + 50 visible once this poll completes
    r.addGenerated(30) // streamed while the poll is in flight: may or may not be in the figure
    expect(ledger.outstandingTokens('b')).toBe(700)
    ledger.completePoll(mark)
    expect(r.visibleTokens).toBe(550)
    expect(ledger.outstandingTokens('b')).toBe(150) // 700 − 550
    expect(ledger.reservedTokens('b')).toBe(700)
  })

  it('grows a reservation that outstreams its prediction, so it never under-counts', () => {
    const ledger = createLedger()
    const r = ledger.reserve({ backendId: 'b', requestId: 'r', promptTokens: 100, predictedOutputTokens: 10 })
    r.markStarted()
    r.addGenerated(10)
    expect(r.reservedTokens).toBe(110)
    r.addGenerated(5)
    expect(r.reservedTokens).toBe(115)
    ledger.completePoll(ledger.beginPoll('b'))
    expect(ledger.outstandingTokens('b')).toBe(0) // all of it is in the polled usage now
    r.addGenerated(7)
    expect(ledger.outstandingTokens('b')).toBe(7)
    expect(ledger.reservedTokens('b')).toBe(122)
  })

  it('ignores an older poll that completes after a newer one, and forgets failed polls', () => {
    const ledger = createLedger()
    const r = ledger.reserve({ backendId: 'b', requestId: 'r', promptTokens: 100, predictedOutputTokens: 100 })
    r.markStarted()
    const older = ledger.beginPoll('b')
    r.addGenerated(40)
    const newer = ledger.beginPoll('b')
    ledger.completePoll(newer)
    expect(r.visibleTokens).toBe(140)
    ledger.completePoll(older)
    expect(r.visibleTokens).toBe(140)
    // A flapping backend: many marks never completed must not pile up or change anything.
    for (let i = 0; i < 100; i++) ledger.beginPoll('b')
    expect(ledger.outstandingTokens('b')).toBe(60)
  })

  it('releases exactly once and returns to zero with nothing live', () => {
    const changes: number[] = []
    const reasons: string[] = []
    const ledger = createLedger({
      onChange: () => changes.push(ledger.outstandingTokens()),
      onRelease: (_r, reason) => reasons.push(reason),
    })
    const a = ledger.reserve({ backendId: 'b0', requestId: 'a', promptTokens: 10, predictedOutputTokens: 5 })
    const b = ledger.reserve({ backendId: 'b1', requestId: 'b', promptTokens: 20, predictedOutputTokens: 5 })
    a.markStarted()
    const mark = ledger.beginPoll('b0')
    expect(a.release('completed')).toBe(true)
    expect(a.release('client_abort')).toBe(false)
    ledger.completePoll(mark) // completes after the release: must not resurrect anything
    a.addGenerated(100) // a late token after release changes nothing
    expect(ledger.outstandingTokens()).toBe(25)
    expect(ledger.list().map((r) => r.requestId)).toEqual(['b'])
    expect(b.release('deadline')).toBe(true)
    expect(ledger.outstandingTokens()).toBe(0)
    expect(ledger.reservedTokens()).toBe(0)
    expect(ledger.liveCount()).toBe(0)
    expect(reasons).toEqual(['completed', 'deadline'])
    expect(changes.at(-1)).toBe(0)
    expect(ledger.audit()).toEqual({ reservedTokens: 0, outstandingTokens: 0, ungeneratedTokens: 0, liveCount: 0 })
  })

  it('keeps the incremental totals equal to a recount after many random operations', () => {
    const ledger = createLedger()
    let seed = 12345
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const live: ReturnType<typeof ledger.reserve>[] = []
    const marks: ReturnType<typeof ledger.beginPoll>[] = []
    for (let step = 0; step < 5_000; step++) {
      const op = rand(6)
      const r = live[rand(Math.max(1, live.length))]
      if (op === 0 || live.length === 0) {
        live.push(
          ledger.reserve({
            backendId: `b${rand(3)}`,
            requestId: `r${step}`,
            promptTokens: rand(500),
            predictedOutputTokens: rand(300),
          }),
        )
      } else if (op === 1) r?.markStarted()
      else if (op === 2) r?.addGenerated(rand(40))
      else if (op === 3) marks.push(ledger.beginPoll(`b${rand(3)}`))
      else if (op === 4 && marks.length > 0) ledger.completePoll(marks.splice(rand(marks.length), 1)[0]!)
      else if (r !== undefined) {
        r.release('done')
        live.splice(live.indexOf(r), 1)
      }
      const audit = ledger.audit()
      expect(ledger.reservedTokens()).toBe(audit.reservedTokens)
      expect(ledger.outstandingTokens()).toBe(audit.outstandingTokens)
      expect(ledger.ungeneratedTokens()).toBe(audit.ungeneratedTokens)
    }
    for (const r of live) r.release('shutdown')
    expect(ledger.outstandingTokens()).toBe(0)
    expect(ledger.reservedTokens()).toBe(0)
    expect(ledger.ungeneratedTokens()).toBe(0)
  })
})
