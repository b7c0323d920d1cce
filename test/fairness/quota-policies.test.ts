import { describe, expect, it } from 'vitest'
import type { PolicyUser } from '../../src/policies/index.js'
import { compareFifoAndVtc, printTable, runFairness } from './harness.js'

const MINUTE = 60_000

describe('fairness: quotas through the admission controller', () => {
  it('tpm holds each backlogged user within 5% of its quota over a minute, and 429s carry x-ratelimit-*', async () => {
    const alice: PolicyUser = { name: 'alice', weight: 1, tokensPerMinute: 60_000 }
    const bob: PolicyUser = { name: 'bob', weight: 1, tokensPerMinute: 24_000, requestsPerMinute: 1_000 }
    const run = await runFairness({
      policy: 'tpm',
      users: [
        { user: alice, ratePerSecond: 5, promptTokens: 200, outputTokens: 100 },
        { user: bob, ratePerSecond: 5, promptTokens: 200, outputTokens: 100 },
      ],
      // Room for 100 requests at once: KV is not the constraint, only the quotas are.
      capacityTokens: 30_000,
      durationMs: 2 * MINUTE,
      deadlineMs: 10_000,
    })
    const rows: (string | number)[][] = []
    for (const [user, quota] of [
      ['alice', 60_000],
      ['bob', 24_000],
    ] as const) {
      for (let minute = 0; minute < 2; minute++) {
        const admitted = run.requests
          .filter((r) => r.user === user && r.admittedAtMs >= minute * MINUTE && r.admittedAtMs < (minute + 1) * MINUTE)
          .reduce((sum, r) => sum + r.needTokens, 0)
        rows.push([user, minute + 1, quota, admitted, admitted / quota])
        expect(admitted, `${user} minute ${minute + 1}`).toBeLessThanOrEqual(quota)
        expect(admitted, `${user} minute ${minute + 1}`).toBeGreaterThanOrEqual(0.95 * quota)
      }
    }
    printTable(
      'tpm: tokens admitted per minute vs quota (300-token requests, 5/s offered each)',
      ['user', 'minute', 'quota', 'admitted', 'ratio'],
      rows,
    )
    // Offered 90,000 tokens/min each: what the quota holds back waits, and 429s at its deadline with the quota's figures.
    const quotaRejections = run.rejections.filter((r) => r.error.code === 'quota_exceeded')
    expect(quotaRejections.length).toBeGreaterThan(0)
    const headers = quotaRejections[0]?.error.headers ?? {}
    expect(headers['x-ratelimit-limit-tokens']).toMatch(/^(60000|24000)$/)
    expect(headers['x-ratelimit-remaining-tokens']).toBeDefined()
    expect(headers['x-ratelimit-reset-tokens']).toMatch(/^\d/)
    expect(Number(headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(Number(headers['retry-after'])).toBeLessThanOrEqual(60)
    await compareFifoAndVtc('tpm test')
  })

  it("dynamic-tpm hands an idle user's share to the others and takes it back when the user returns", async () => {
    const users = ['a', 'b', 'c'].map((name) => ({ name, weight: 1 }) satisfies PolicyUser)
    // KV holds 10 requests of 300 tokens: 5 requests/s, 1,500 tokens/s, 90,000 tokens/min served in all.
    // a and b are backlogged throughout; c is backlogged, goes quiet at 40 s, and returns at 120 s.
    const run = await runFairness({
      policy: 'dynamic-tpm',
      policyOptions: { intervalMs: 1_000, activeWindowMs: 20_000 },
      users: [
        { user: users[0] as PolicyUser, ratePerSecond: 4, promptTokens: 200, outputTokens: 100 },
        { user: users[1] as PolicyUser, ratePerSecond: 4, promptTokens: 200, outputTokens: 100 },
        { user: users[2] as PolicyUser, ratePerSecond: 4, promptTokens: 200, outputTokens: 100, untilMs: 40_000 },
        { user: { name: 'c', weight: 1 }, ratePerSecond: 4, promptTokens: 200, outputTokens: 100, fromMs: 120_000 },
      ],
      capacityTokens: 3_000,
      durationMs: 180_000,
      deadlineMs: 15_000,
    })
    const share = (fromMs: number, toMs: number) => {
      const inWindow = run.requests.filter((r) => r.admittedAtMs >= fromMs && r.admittedAtMs < toMs)
      const total = inWindow.reduce((s, r) => s + r.needTokens, 0)
      return Object.fromEntries(
        ['a', 'b', 'c'].map((u) => [
          u,
          inWindow.filter((r) => r.user === u).reduce((s, r) => s + r.needTokens, 0) / total,
        ]),
      ) as Record<string, number>
    }
    const throughput = (fromMs: number, toMs: number) =>
      (run.requests
        .filter((r) => r.admittedAtMs >= fromMs && r.admittedAtMs < toMs)
        .reduce((s, r) => s + r.needTokens, 0) *
        MINUTE) /
      (toMs - fromMs)
    // Quotas count over a sliding minute, so shares are measured over whole minutes where possible: c is
    // inactive from 60 s (20 s after its last request) and back from 120 s.
    const phases = [
      ['all three', 5_000, 40_000],
      ['c idle', 60_000, 120_000],
      ['c back', 120_000, 180_000],
    ] as const
    printTable(
      'dynamic-tpm: share of admitted tokens and throughput (tokens/min) by phase',
      ['phase', 'a', 'b', 'c', 'tokens/min'],
      phases.map(([name, from, to]) => {
        const s = share(from, to)
        return [name, s['a'] ?? 0, s['b'] ?? 0, s['c'] ?? 0, throughput(from, to)]
      }),
    )
    const [all, idle, back] = phases.map(([, from, to]) => share(from, to)) as [
      Record<string, number>,
      Record<string, number>,
      Record<string, number>,
    ]
    for (const u of ['a', 'b', 'c']) expect(all[u]).toBeCloseTo(1 / 3, 1)
    // Work-conserving: with c idle, a and b split everything and the KV stays busy.
    expect(idle['c']).toBe(0)
    expect(idle['a']).toBeCloseTo(0.5, 1)
    expect(throughput(60_000, 120_000)).toBeGreaterThan(0.9 * throughput(5_000, 40_000))
    // c gets its third back.
    for (const u of ['a', 'b', 'c']) expect(back[u]).toBeCloseTo(1 / 3, 1)
    await compareFifoAndVtc('dynamic-tpm test')
  })
})
