import { describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/core/index.js'
import { parseSince } from '../../src/gateway/debug-routes.js'
import {
  createUsageTally,
  OTHER_USERS,
  USAGE_BUCKET_MS,
  USAGE_RETENTION_MS,
  USAGE_USERS_PER_BUCKET,
} from '../../src/telemetry/index.js'

const MINUTE = 60_000
// A wall clock on a minute boundary, so bucket edges are where the test says.
const WALL_START = 1_730_000_040_000

const served = (user: string, input = 10, output = 5) => ({
  user,
  status: 200,
  admitted: true,
  completed: true,
  inputTokens: input,
  outputTokens: output,
})

describe('the per-user usage tally', () => {
  it('sums a period by user, most tokens first, counting 429s and 503s apart', () => {
    expect(WALL_START % USAGE_BUCKET_MS).toBe(0)
    const clock = createManualClock(0, WALL_START)
    const usage = createUsageTally(clock)
    usage.record(served('alice', 100, 50))
    usage.record({ user: 'bob', status: 429, admitted: false, completed: false, inputTokens: 40, outputTokens: 0 })
    clock.advance(MINUTE)
    usage.record(served('bob', 10, 5))
    usage.record({ user: 'bob', status: 503, admitted: false, completed: false, inputTokens: 0, outputTokens: 0 })
    usage.record({ user: 'carol', status: 200, admitted: true, completed: false, inputTokens: 7, outputTokens: 2 })

    const all = usage.report(WALL_START, 10)
    expect(all.fromMs).toBe(WALL_START)
    expect(all.toMs).toBe(WALL_START + MINUTE)
    expect(all.users).toEqual([
      {
        user: 'alice',
        requests: 1,
        admitted: 1,
        completed: 1,
        rateLimited: 0,
        unavailable: 0,
        inputTokens: 100,
        outputTokens: 50,
      },
      // A refused request's prompt was never served: it counts as a request, not as tokens.
      {
        user: 'bob',
        requests: 3,
        admitted: 1,
        completed: 1,
        rateLimited: 1,
        unavailable: 1,
        inputTokens: 10,
        outputTokens: 5,
      },
      {
        user: 'carol',
        requests: 1,
        admitted: 1,
        completed: 0,
        rateLimited: 0,
        unavailable: 0,
        inputTokens: 7,
        outputTokens: 2,
      },
    ])
    expect(all.totals).toEqual({
      users: 3,
      requests: 5,
      admitted: 3,
      completed: 2,
      rateLimited: 1,
      unavailable: 1,
      inputTokens: 117,
      outputTokens: 57,
    })
    // The second minute only (a `since` inside a minute counts from its start), and a bounded page.
    expect(usage.report(WALL_START + MINUTE + 30_000, 10).users.map((u) => u.user)).toEqual(['bob', 'carol'])
    const page = usage.report(WALL_START, 1)
    expect(page.users.map((u) => u.user)).toEqual(['alice'])
    expect(page.totals.users).toBe(3)
  })

  it('forgets what is older than a day, and folds users past the per-minute bound into one row', () => {
    const clock = createManualClock(0, WALL_START)
    const usage = createUsageTally(clock)
    usage.record(served('early'))
    clock.advance(USAGE_RETENTION_MS)
    for (let i = 0; i < USAGE_USERS_PER_BUCKET + 5; i++) usage.record(served(`u${i}`))
    usage.record(served('u0')) // already has its row this minute
    const report = usage.report(0, 10_000)
    expect(report.users.some((u) => u.user === 'early')).toBe(false)
    expect(report.totals.users).toBe(USAGE_USERS_PER_BUCKET + 1)
    expect(report.users.find((u) => u.user === OTHER_USERS)?.requests).toBe(5)
    expect(report.users.find((u) => u.user === 'u0')?.requests).toBe(2)
    expect(report.totals.requests).toBe(USAGE_USERS_PER_BUCKET + 6)
  })
})

describe('?since= of /debug/usage', () => {
  const now = Date.parse('2026-12-02T03:00:00Z')
  it('takes a duration back from now, an ISO time or epoch ms; the last hour by default', () => {
    expect(parseSince(undefined, now)).toBe(now - 3_600_000)
    expect(parseSince('90s', now)).toBe(now - 90_000)
    expect(parseSince('15m', now)).toBe(now - 15 * MINUTE)
    expect(parseSince('6h', now)).toBe(now - 6 * 3_600_000)
    expect(parseSince('1d', now)).toBe(now - 86_400_000)
    expect(parseSince('2026-12-02T02:30:00Z', now)).toBe(now - 30 * MINUTE)
    expect(parseSince(String(now - 5_000), now)).toBe(now - 5_000)
  })
  it('refuses anything else', () => {
    for (const bad of ['1w', '-5m', 'yesterday', '12/01/2026', '1e3', ['1h']])
      expect(parseSince(bad, now)).toBeUndefined()
  })
})
