import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManualClock, type ManualClock } from '../../src/core/index.js'
import {
  createMemoryStateStore,
  createRedisStateStore,
  type AdmitInput,
  type SharedBackendFigures,
  type StateStore,
} from '../../src/state/index.js'
import { until } from '../support/poll.js'
import { redisAvailable, startRedis, type RedisServer } from '../support/redis.js'

/**
 * The one contract every state store keeps, run against the memory store (on a stepped clock) and against a
 * real redis-server (its scripts, its TTLs, its pub/sub). What holds for both is what admission relies on.
 */
interface Harness {
  store: StateStore
  /** Let `ms` pass for leases: the manual clock steps, Redis is waited for (a TTL runs on its own clock). */
  pass(ms: number): Promise<void>
  close(): Promise<void>
}

const CAPACITY = 10_000
const HEADROOM = 0.05 // 500 tokens

const admit = (store: StateStore, input: Partial<AdmitInput> & { requestId: string }) =>
  store.admit({
    replicaId: 'r1',
    backendId: 'b0',
    user: 'alice',
    promptTokens: 1_000,
    reservedTokens: 3_000,
    headroomRatio: HEADROOM,
    nowMs: 1_000_000,
    ...input,
  })

const total = (f: SharedBackendFigures | undefined): number =>
  Object.values(f?.outstandingByReplica ?? {}).reduce((sum, v) => sum + v, 0)

async function polled(store: StateStore, usedTokens = 0, replicaId = 'r1', backendId = 'b0') {
  const seq = await store.beginPoll(replicaId, backendId, [])
  return await store.completePoll(backendId, seq, { capacityTokens: CAPACITY, usedTokens })
}

function contract(name: string, make: () => Promise<Harness>, leaseMs: number): void {
  describe(`state store contract: ${name}`, () => {
    let h: Harness
    const fresh = async (): Promise<StateStore> => {
      await h?.close()
      h = await make()
      return h.store
    }
    afterAll(async () => h?.close())

    it('refuses before any poll, then admits what fits and refuses what does not', async () => {
      const store = await fresh()
      expect(await admit(store, { requestId: 'a' })).toMatchObject({ admitted: false, reason: 'no-poll' })
      await polled(store, 2_000)
      const first = await admit(store, { requestId: 'a', reservedTokens: 4_000 })
      expect(first).toMatchObject({ admitted: true })
      expect(first.admitted && first.figures.outstandingByReplica).toEqual({ r1: 4_000 })
      // room = 10,000 − 2,000 − 500 − 4,000 = 3,500
      expect(await admit(store, { requestId: 'b', reservedTokens: 3_600 })).toMatchObject({
        admitted: false,
        reason: 'kv',
      })
      const fits = await admit(store, { requestId: 'b', replicaId: 'r2', reservedTokens: 3_500 })
      expect(fits.admitted && fits.figures.outstandingByReplica).toEqual({ r1: 4_000, r2: 3_500 })
    })

    it('admits a request id once, and releases it exactly once', async () => {
      const store = await fresh()
      await polled(store)
      expect((await admit(store, { requestId: 'a' })).admitted).toBe(true)
      const again = await admit(store, { requestId: 'a' })
      expect(again.admitted && total(again.figures)).toBe(3_000)
      expect(await store.release('a', 10, 1_000_000)).toBe(true)
      expect(await store.release('a', 10, 1_000_000)).toBe(false)
      expect(total((await store.figures())[0])).toBe(0)
    })

    it('reconciles visibility per reservation with the poll that began after its progress', async () => {
      const store = await fresh()
      await polled(store)
      await admit(store, { requestId: 'a', promptTokens: 2_000, reservedTokens: 3_000 })
      // Started, 100 generated: the poll will see 2,100 of its 3,000.
      const older = await store.beginPoll('r1', 'b0', [{ requestId: 'a', heldTokens: 2_100, reservedTokens: 3_000 }])
      const newer = await store.beginPoll('r2', 'b0', [])
      const done = await store.completePoll('b0', newer, { capacityTokens: CAPACITY, usedTokens: 2_112 })
      expect(done.outstandingByReplica).toEqual({ r1: 900 })
      expect(done.usedTokens).toBe(2_112)
      // The older poll completing last is ignored: its figures are older than what is in force.
      const late = await store.completePoll('b0', older, { capacityTokens: CAPACITY, usedTokens: 0 })
      expect(late.usedTokens).toBe(2_112)
      expect(late.pollSeq).toBe(newer)
      // A reservation grows past its prediction: the outstanding part follows.
      await store.beginPoll('r1', 'b0', [{ requestId: 'a', heldTokens: 2_100, reservedTokens: 3_400 }])
      expect((await store.figures())[0]?.outstandingByReplica).toEqual({ r1: 1_300 })
      // A progress report for another replica's reservation changes nothing.
      await store.beginPoll('r2', 'b0', [{ requestId: 'a', heldTokens: 3_400, reservedTokens: 9_000 }])
      expect((await store.figures())[0]?.outstandingByReplica).toEqual({ r1: 1_300 })
    })

    it("frees a replica's reservations once its lease lapses, and only its", async () => {
      const store = await fresh()
      await polled(store)
      await store.heartbeat('r1', leaseMs)
      await store.heartbeat('r2', leaseMs * 20)
      await admit(store, { requestId: 'a', replicaId: 'r1' })
      await admit(store, { requestId: 'b', replicaId: 'r2', reservedTokens: 1_000 })
      expect(await store.heartbeat('r2', leaseMs * 20)).toEqual({ replicas: 2, reaped: 0 })
      await h.pass(leaseMs + 50)
      const beat = await until(async () => {
        const b = await store.heartbeat('r2', leaseMs * 20)
        return b.reaped > 0 ? b : undefined
      }, 5_000)
      expect(beat).toEqual({ replicas: 1, reaped: 1 })
      expect((await store.figures())[0]?.outstandingByReplica).toEqual({ r2: 1_000 })
      expect(await store.release('a', 0, 1_000_000)).toBe(false)
    })

    it("a resync makes the store's reservations of a replica exactly its live ones", async () => {
      const store = await fresh()
      await polled(store)
      await admit(store, { requestId: 'a' })
      await admit(store, { requestId: 'b', reservedTokens: 1_000 })
      // 'a' ended while the store was unreachable, 'c' was admitted then (degraded mode).
      const live = [
        { requestId: 'b', backendId: 'b0', user: 'alice', promptTokens: 500, reservedTokens: 1_000, heldTokens: 600 },
        { requestId: 'c', backendId: 'b0', user: 'bob', promptTokens: 200, reservedTokens: 700, heldTokens: 0 },
      ]
      await store.resync('r1', leaseMs * 20, live)
      expect((await store.figures())[0]?.outstandingByReplica).toEqual({ r1: 1_700 })
      expect(await store.release('a', 0, 1_000_000)).toBe(false)
      expect(await store.release('c', 0, 1_000_000)).toBe(true)
      await store.resync('r1', leaseMs * 20, [])
      expect(total((await store.figures())[0])).toBe(0)
    })

    it('wakes every subscriber with the figures after a release', async () => {
      const store = await fresh()
      const seen: SharedBackendFigures[][] = []
      store.onWake((figures) => seen.push([...figures]))
      await polled(store)
      await admit(store, { requestId: 'a' })
      await store.release('a', 0, 1_000_000)
      const woken = await until(() => seen.find((list) => list.some((f) => f.backendId === 'b0' && total(f) === 0)))
      expect(woken[0]?.usedTokens).toBe(0)
    })

    it('VTC gate: yields to a user served less whose head elsewhere would no longer fit; lifts a newcomer', async () => {
      const store = await fresh()
      await polled(store)
      const fairShare = { weight: 1, wIn: 1, wOut: 2 }
      // heavy: charged 1,000 + 2 × 2,000 = 5,000.
      await admit(store, { requestId: 'h1', user: 'heavy', fairShare })
      await store.noteHead('r1', 'light', 3_000)
      // Lifted to the smallest counter among users with heads: none other has one, so "last left" (0).
      expect((await store.fairness()).counters['light']).toBe(0)
      await store.noteHead('r2', 'heavy', 3_000)
      // room 6,500: admitting heavy's 3,000 would leave 3,500 ≥ light's 3,000: both fit, heavy may go.
      expect((await admit(store, { requestId: 'h2', user: 'heavy', replicaId: 'r2', fairShare })).admitted).toBe(true)
      // room 3,500: heavy's 3,000 would leave light's head without room, and light is served less.
      const held = await admit(store, { requestId: 'h3', user: 'heavy', replicaId: 'r2', fairShare })
      expect(held).toMatchObject({ admitted: false, reason: 'fairness' })
      expect((await admit(store, { requestId: 'l1', user: 'light', fairShare })).admitted).toBe(true)
      // The release settles: 100 completion tokens instead of 2,000 predicted refunds 2 × 1,900.
      await store.release('h1', 100, 1_000_000)
      expect((await store.fairness()).counters['heavy']).toBeCloseTo(5_000 * 2 - 3_800)
      // A user arriving after its queue was empty is lifted to the smallest counter of users with heads.
      await store.noteHead('r1', 'light', undefined)
      await store.noteHead('r3', 'late', 700)
      const state = await store.fairness()
      expect(state.counters['late']).toBeCloseTo(state.counters['heavy'] ?? Number.NaN)
      expect(state.heads).toEqual({ heavy: 3_000, late: 700 })
    })

    it('shared quota: a sliding minute across replicas, reserved at the prediction and settled at the end', async () => {
      const store = await fresh()
      await polled(store)
      const quota = { tokensPerMinute: 5_000 }
      expect((await admit(store, { requestId: 'q1', quota, reservedTokens: 3_000 })).admitted).toBe(true)
      const over = await admit(store, { requestId: 'q2', replicaId: 'r2', quota, reservedTokens: 3_000 })
      expect(over).toMatchObject({ admitted: false, reason: 'quota' })
      expect(!over.admitted && over.retryAfterMs).toBeGreaterThan(50_000)
      // 2,000 predicted, 500 used: 1,500 refunded, so 3,000 more fit.
      await store.release('q1', 500, 1_000_000)
      expect(await store.quotaUsage('alice', 1_000_000)).toEqual({ tokens: 1_500, requests: 1 })
      expect((await admit(store, { requestId: 'q2', replicaId: 'r2', quota, reservedTokens: 3_000 })).admitted).toBe(
        true,
      )
      const rpm = await admit(store, { requestId: 'q3', quota: { requestsPerMinute: 2 }, reservedTokens: 10 })
      expect(rpm).toMatchObject({ admitted: false, reason: 'quota' })
    })
  })
}

contract(
  'memory',
  async () => {
    const clock: ManualClock = createManualClock()
    const store = createMemoryStateStore({ clock })
    return {
      store,
      pass: async (ms) => clock.advance(ms),
      close: () => store.close(),
    }
  },
  1_000,
)

describe.runIf(redisAvailable)('redis', () => {
  let server: RedisServer
  let n = 0
  beforeAll(async () => {
    server = await startRedis()
  })
  afterAll(async () => server?.close())
  contract(
    'redis',
    async () => {
      // A prefix per test: the suite shares one server and each test starts from empty books.
      const store = await createRedisStateStore({ url: server.url, keyPrefix: `t${++n}:`, commandTimeoutMs: 2_000 })
      return { store, pass: async () => undefined, close: () => store.close() }
    },
    200,
  )
})
