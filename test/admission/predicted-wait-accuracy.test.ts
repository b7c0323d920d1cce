import { describe, expect, it } from 'vitest'
import type { WaitCheck } from '../../src/admission/index.js'
import { createSeededRandom } from '../../src/core/index.js'
import { policyFactories, policyNames } from '../../src/policies/index.js'
import { createHarness, settle, user, type Tracked } from './harness.js'

const STEP_MS = 10
const RUN_MS = 1_000 // an admitted request runs 1 s
const POLL_MS = 100
const DURATION_MS = 30_000
/** Arrivals per second: a heavy user and a light one, together a little over the 4/s the backend serves. */
const RATES = { heavy: 3.4, light: 1.2 }

interface Sample {
  user: string
  predictedMs: number
  actualMs: number
}

/**
 * A KV-bound backlog on a stepped clock: a 2,000-token backend holds four 500-token requests, each runs 1 s,
 * and two users send requests as Poisson processes (a seeded generator) for 30 s. Each request's predicted
 * wait is what retry-after would say for it just before it is sent (`predictWaitMs`), and the raw model's
 * prediction when it joined the queue (`onWaitCheck`); both are compared with the wait it had.
 */
async function run(policyName: string): Promise<{ reported: Sample[]; raw: WaitCheck[] }> {
  const raw: WaitCheck[] = []
  const h = createHarness({
    capacities: [2_000],
    policy: policyFactories[policyName]!({ users: [], options: {} }),
    maxQueueLength: 10_000,
    onWaitCheck: (check) => raw.push(check),
  })
  const random = createSeededRandom(7)
  const nextArrival = { heavy: 0, light: 0 }
  const drawGap = (rate: number) => (-Math.log(1 - random.next()) / rate) * 1_000
  const pending: { tracked: Tracked; user: string; predictedMs: number | undefined; atMs: number }[] = []
  const running = new Map<Tracked, number>()
  const reported: Sample[] = []
  for (let now = 0; now < DURATION_MS + 30_000; now += STEP_MS) {
    for (const who of ['heavy', 'light'] as const) {
      while (now < DURATION_MS && nextArrival[who] <= now) {
        nextArrival[who] += drawGap(RATES[who])
        const measured = h.controller.stats().drainTokensPerSecond !== undefined
        const predictedMs = measured ? h.controller.predictWaitMs(user(who), 500) : undefined
        const tracked = h.submit({
          id: `${who}-${now}-${pending.length}`,
          user: user(who),
          promptTokens: 250,
          predictedOutputTokens: 250,
          deadlineMs: 600_000,
        })
        pending.push({ tracked, user: who, predictedMs, atMs: now })
      }
    }
    await settle()
    for (const p of pending) {
      if (p.tracked.status !== 'admitted' || running.has(p.tracked)) continue
      running.set(p.tracked, now)
      p.tracked.admission?.firstToken()
      if (p.predictedMs !== undefined) {
        reported.push({ user: p.user, predictedMs: p.predictedMs, actualMs: p.tracked.admission!.waitedMs })
      }
    }
    for (const [tracked, startedMs] of running) {
      if (now - startedMs >= RUN_MS && tracked.admission?.finished === false) tracked.admission.finish(250)
    }
    h.clock.advance(STEP_MS)
    if (now % POLL_MS === 0) h.pollAll()
  }
  expect(pending.every((p) => p.tracked.status === 'admitted')).toBe(true)
  expect(h.ledger.reservedTokens()).toBe(0)
  return { reported, raw: raw.filter((c) => c.kind === 'admitted') }
}

function medianRelativeError(pairs: { predictedMs: number; actualMs: number }[]): number {
  const errors = pairs
    .filter((p) => p.actualMs >= 250) // a wait worth predicting; shorter ones are a poll or two
    .map((p) => Math.abs(p.predictedMs - p.actualMs) / p.actualMs)
    .sort((a, b) => a - b)
  expect(errors.length).toBeGreaterThan(20)
  return errors[Math.floor(errors.length / 2)] as number
}

describe('admission: the predicted wait follows the policy in force', () => {
  it.each(policyNames())(
    '%s: median error within 30 percent of the measured wait, once the drain rate is measured',
    async (name) => {
      const { reported, raw } = await run(name)
      if (process.env['KVGATE_PRINT_WAIT_ERRORS']) {
        process.stdout.write(
          `${name}: median error ${medianRelativeError(reported).toFixed(3)} (raw ${medianRelativeError(raw).toFixed(3)})\n`,
        )
      }
      expect(medianRelativeError(reported)).toBeLessThanOrEqual(0.3)
      expect(medianRelativeError(raw)).toBeLessThanOrEqual(0.3)
    },
  )

  it('vtc predicts a short wait for the light user and a long one for the heavy user; fifo the same for both', async () => {
    const median = (samples: Sample[], who: string) => {
      const values = samples
        .filter((s) => s.user === who)
        .map((s) => s.predictedMs)
        .sort((a, b) => a - b)
      return values[Math.floor(values.length / 2)] as number
    }
    const vtc = (await run('vtc')).reported
    expect(median(vtc, 'light')).toBeLessThan(median(vtc, 'heavy') / 3)
    const fifo = (await run('fifo')).reported
    // Under fifo both wait behind the same queue: their predictions differ only by when they arrived.
    expect(median(fifo, 'light') / median(fifo, 'heavy')).toBeGreaterThan(0.5)
    expect(median(fifo, 'light') / median(fifo, 'heavy')).toBeLessThan(2)
  })
})
