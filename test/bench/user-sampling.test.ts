import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import type { SimHandle } from '../../src/sim/index.js'
import { startSim } from '../../src/sim/index.js'
import { pickUsers } from '../../src/bench/user-sampling.js'
import { fixture, runBench } from './cli-harness.js'

const SPEED = 20
const dir = mkdtempSync(join(tmpdir(), 'kvgate-user-sample-'))
let sim: SimHandle
beforeAll(async () => {
  sim = await startSim({ speed: SPEED, logger: false })
})
afterAll(async () => {
  await sim.close()
  rmSync(dir, { recursive: true, force: true })
})

/** The fixture's rows: user → [time, round][]. */
function traceRows(): Map<string, [number, number][]> {
  const rows = new Map<string, [number, number][]>()
  for (const line of readFileSync(fixture('seed000-users.txt'), 'utf8').trim().split('\n').slice(1)) {
    const [user, time, , , round] = line.trim().split(/\s+/)
    rows.set(user as string, [...(rows.get(user as string) ?? []), [Number(time), Number(round)]])
  }
  return rows
}

describe('--user-sample-ratio (seed 000 user sampling)', () => {
  it('keeps half of the users, each with every one of its rounds, and states the arrival rate', async () => {
    const json = join(dir, 'half.json')
    const { stdout, exitCode } = await runBench([
      '-i',
      fixture('seed000-users.txt'),
      '-u',
      sim.url,
      '--speed',
      String(SPEED),
      '--user-sample-ratio',
      '0.5',
      '--output-json',
      json,
    ])
    expect(exitCode).toBeUndefined()
    const out = JSON.parse(readFileSync(json, 'utf8')) as {
      user_sample: { users: number; usersKept: number; requests: number; requestsKept: number; arrivalRate: number }
      requests: { user: string; round: number; scheduledMs: number; outcome: string }[]
    }
    const rows = traceRows()
    const sent = new Map<string, number[]>()
    for (const r of out.requests) sent.set(r.user, [...(sent.get(r.user) ?? []), r.round])
    expect(sent.size).toBe(4)
    for (const [user, rounds] of sent) {
      // Whole users: every round the trace has for this user, nothing else.
      expect([...rounds].sort((a, b) => a - b)).toEqual((rows.get(user) ?? []).map(([, round]) => round))
    }
    expect(out.requests.every((r) => r.outcome === 'completed')).toBe(true)
    expect(out.user_sample).toMatchObject({ users: 8, usersKept: 4, requests: 19, requestsKept: out.requests.length })
    // The kept users' arrivals, unscaled: (n − 1) requests over the span from the first to the last.
    const times = [...sent.keys()].flatMap((u) => (rows.get(u) ?? []).map(([t]) => t)).sort((a, b) => a - b)
    const rate = (times.length - 1) / ((times[times.length - 1] as number) - (times[0] as number))
    expect(out.user_sample.arrivalRate).toBeCloseTo(rate, 6)
    expect(stdout).toContain(`user_sample: 4 of 8 users (ratio 0.5, seed 0), ${times.length} of 19 requests`)
    expect(stdout).toMatch(/arrival rate \d+\.\d{3} req\/s \(all users: \d+\.\d{3} req\/s\)/)
    // The first kept request arrives at 0, as every replayed trace starts.
    expect(Math.min(...out.requests.map((r) => r.scheduledMs))).toBe(0)
  })

  it('works with --time-scale and --duration: arrivals are scaled first, then cut', async () => {
    const json = join(dir, 'scaled.json')
    const { exitCode } = await runBench([
      '-i',
      fixture('seed000-users.txt'),
      '-u',
      sim.url,
      '--speed',
      String(SPEED),
      '--user-sample-ratio',
      '0.5',
      '--time-scale',
      '10',
      '--duration',
      '2',
      '--output-json',
      json,
    ])
    expect(exitCode).toBeUndefined()
    const out = JSON.parse(readFileSync(json, 'utf8')) as { requests: { user: string; scheduledMs: number }[] }
    expect(out.requests.length).toBeGreaterThan(0)
    expect(new Set(out.requests.map((r) => r.user)).size).toBeLessThanOrEqual(4)
    expect(Math.max(...out.requests.map((r) => r.scheduledMs))).toBeLessThanOrEqual(2000)
  })

  it('draws round(ratio · users) users, the same ones for one seed', () => {
    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`)
    const a = pickUsers(users, 0.25, createSeededRandom(7))
    expect(a.size).toBe(25)
    expect(pickUsers(users, 0.25, createSeededRandom(7))).toEqual(a)
    expect(pickUsers(users, 0.25, createSeededRandom(8))).not.toEqual(a)
    expect(pickUsers(users, 0.001, createSeededRandom(7)).size).toBe(1)
    expect(() => pickUsers(users, 1.5, createSeededRandom(7))).toThrow(/--user-sample-ratio: must be in \(0, 1\]/)
  })
})
