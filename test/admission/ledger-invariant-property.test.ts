import { describe, expect, it } from 'vitest'
import { createSeededRandom, randomInt, type Random } from '../../src/core/index.js'
import { policyFactories, policyNames, type PolicyUser } from '../../src/policies/index.js'
import { createHarness, settle, type Harness, type Tracked } from './harness.js'

interface Client {
  id: string
  tracked: Tracked
  abort: AbortController
  promptTokens: number
  outputTokens: number
  generated: number
  started: boolean
}

const CAPACITIES = [2_000, 3_000]
const HEADROOM = 0.05

/**
 * Thousands of random submits, aborts (queued and mid-stream), finishes, polls, backend outages and deadline
 * expiries through the real fifo policy. Whatever happens, every request ends exactly once, and at the end the
 * queue is empty and the ledger is 0. With outputs within their prediction the gateway also never commits
 * more than a backend's usable capacity.
 */
async function run(seed: number, overshoot: boolean, policyName = 'fifo'): Promise<void> {
  const random: Random = createSeededRandom(seed)
  // Quotas tight enough that tpm and dynamic-tpm hold users back during the run.
  const users: PolicyUser[] = Array.from({ length: 8 }, (_, i) => ({
    name: `u${i}`,
    weight: 1 + (i % 3),
    tokensPerMinute: 30_000,
    requestsPerMinute: 60,
  }))
  const policy = policyFactories[policyName]!({ users, options: {} })
  const h: Harness = createHarness({
    policy,
    capacities: CAPACITIES,
    headroomRatio: HEADROOM,
    maxQueueLength: 8,
    earlyReject: true,
    maxBypassMs: 300,
    deadlineTickMs: 50,
  })
  const clients: Client[] = []
  const deadlines = new Map<string, number>()
  const pick = <T>(items: T[]): T | undefined =>
    items.length === 0 ? undefined : items[randomInt(random, 0, items.length - 1)]
  const streaming = (): Client[] =>
    clients.filter((c) => c.tracked.status === 'admitted' && c.tracked.admission?.finished === false)

  for (let step = 0; step < 3_000; step++) {
    const roll = random.next()
    if (roll < 0.3) {
      const predicted = randomInt(random, 0, 400)
      const outputTokens = overshoot ? randomInt(random, 0, predicted * 2 + 5) : randomInt(random, 0, predicted)
      const abort = new AbortController()
      const promptTokens = randomInt(random, 1, 800)
      const id = `r${step}`
      const deadlineMs = randomInt(random, 50, 3_000)
      deadlines.set(id, deadlineMs)
      const tracked = h.submit({
        id,
        user: users[randomInt(random, 0, 7)]!,
        promptTokens,
        predictedOutputTokens: predicted,
        deadlineMs,
        signal: abort.signal,
      })
      clients.push({ id, tracked, abort, promptTokens, outputTokens, generated: 0, started: false })
    } else if (roll < 0.38) {
      pick(clients.filter((c) => c.tracked.status === 'pending'))?.abort.abort()
    } else if (roll < 0.6) {
      h.clock.advance(randomInt(random, 0, 200))
    } else if (roll < 0.85) {
      const c = pick(streaming())
      if (c !== undefined) {
        const admission = c.tracked.admission!
        if (!c.started) {
          c.started = true
          admission.firstToken()
        }
        const n = Math.min(c.outputTokens - c.generated, randomInt(random, 1, 60))
        if (n > 0) {
          c.generated += n
          admission.recordTokens(n)
        }
        if (c.generated >= c.outputTokens) admission.finish(c.generated, 'completed')
      }
    } else if (roll < 0.9) {
      // Mid-stream endings: client abort or upstream error, finish called twice as a proxy might.
      const c = pick(streaming())
      c?.abort.abort()
      c?.tracked.admission?.finish(c.generated, 'client_abort')
      c?.tracked.admission?.finish(c.generated, 'upstream_error')
    } else if (roll < 0.98) {
      h.pollAll()
    } else {
      // Outages: usually one backend's metrics go stale, now and then both (→ 503s), then they recover.
      const down = randomInt(random, 0, 4)
      for (const [i, backend] of h.backends.entries())
        backend.usable = down === 4 ? false : down === 3 ? true : i !== down
    }
    await settle()

    const audit = h.ledger.audit()
    expect(h.ledger.reservedTokens()).toBe(audit.reservedTokens)
    expect(h.ledger.outstandingTokens()).toBe(audit.outstandingTokens)
    expect(h.ledger.ungeneratedTokens()).toBe(audit.ungeneratedTokens)
    expect(h.ledger.liveCount()).toBe(streaming().length)
    expect(h.controller.queueDepth()).toBe(clients.filter((c) => c.tracked.status === 'pending').length)
    if (!overshoot) {
      for (const [i, backend] of h.backends.entries()) {
        expect(h.ledger.reservedTokens(backend.id)).toBeLessThanOrEqual(CAPACITIES[i]! * (1 - HEADROOM))
      }
    }
  }

  // Wind down: backends back, every stream ends, every deadline passes.
  for (const backend of h.backends) backend.usable = true
  for (
    let round = 0;
    round < 100 && clients.some((c) => c.tracked.status === 'pending' || c.tracked.admission?.finished === false);
    round++
  ) {
    for (const c of streaming()) c.tracked.admission?.finish(c.generated)
    h.clock.advance(500)
    h.pollAll()
    await settle()
  }

  expect(clients.filter((c) => c.tracked.status === 'pending')).toEqual([])
  expect(h.controller.queueDepth()).toBe(0)
  expect(h.controller.queued()).toEqual([])
  expect(h.ledger.outstandingTokens()).toBe(0)
  expect(h.ledger.reservedTokens()).toBe(0)
  expect(h.ledger.liveCount()).toBe(0)
  expect(h.ledger.list()).toEqual([])

  // Deadlines hold: nothing admitted after its deadline, and every deadline rejection within one tick of it.
  for (const e of h.events) {
    const deadlineMs = deadlines.get(e.id)!
    if (e.kind === 'admitted') expect(e.waitedMs, e.id).toBeLessThan(deadlineMs)
    if (e.outcome === 'rejected_deadline') {
      expect(e.waitedMs, e.id).toBeGreaterThanOrEqual(deadlineMs)
      expect(e.waitedMs, e.id).toBeLessThanOrEqual(deadlineMs + 50)
    }
  }

  // Every request ended exactly once: admitted then finished, or rejected, or cancelled.
  const byId = new Map<string, string[]>()
  for (const e of h.events) byId.set(e.id, [...(byId.get(e.id) ?? []), e.kind])
  const endings = new Set<string>()
  for (const c of clients) {
    const kinds = byId.get(c.id)
    expect([['admitted', 'finished'], ['rejected'], ['cancelled']]).toContainEqual(kinds)
    endings.add(kinds!.join('+'))
  }
  // The run exercised every path, so the invariant is not vacuous.
  expect([...endings].sort()).toEqual(['admitted+finished', 'cancelled', 'rejected'])
  const counts: Record<string, number> = {}
  for (const e of h.events) counts[e.outcome ?? e.kind] = (counts[e.outcome ?? e.kind] ?? 0) + 1
  const expected =
    policyName === 'fifo'
      ? [
          'admitted',
          'rejected_deadline',
          'rejected_queue_full',
          'rejected_early',
          'rejected_unavailable',
          'cancelled_queued',
        ]
      : ['admitted', 'cancelled_queued']
  for (const outcome of expected) {
    expect(counts[outcome] ?? 0, JSON.stringify(counts)).toBeGreaterThan(0)
  }
}

describe('admission + ledger invariant under random operations (seeded)', () => {
  it('drains to an empty queue and a zero ledger; never over-commits when outputs stay within prediction', async () => {
    await run(1, false)
    await run(2, false)
  })

  it('drains to zero too when outputs outgrow their predictions (reservations grow)', async () => {
    await run(3, true)
  })

  // The same run through every registered policy: the invariant belongs to admission, whatever orders users.
  for (const name of policyNames().filter((n) => n !== 'fifo')) {
    it(`holds the same invariant under the ${name} policy`, async () => {
      await run(4, false, name)
      await run(5, true, name)
    })
  }
})
