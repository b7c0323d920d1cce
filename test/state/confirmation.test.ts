import { describe, expect, it } from 'vitest'
import { createAdmissionController, createMostRoomView, type Admission } from '../../src/admission/index.js'
import { createManualClock, type ManualClock } from '../../src/core/index.js'
import { createLedger, type Ledger } from '../../src/ledger/index.js'
import { createFifoPolicy } from '../../src/policies/index.js'
import { createMemoryStateStore, createSharedAdmission, type StateStore } from '../../src/state/index.js'
import type { BackendCapacity } from '../../src/upstream/index.js'
import { until } from '../support/poll.js'

const LEASE_MS = 1_000
const HEARTBEAT_MS = 200
const backends = (): BackendCapacity[] => [{ id: 'b0', capacityTokens: 10_000, usedTokens: 0, usable: true }]

/** One replica as the gateway builds it: its own ledger and queue, the shared view and confirmations. */
function replica(store: StateStore, clock: ManualClock, name: string) {
  let ring = (): void => undefined
  const ledger: Ledger = createLedger({ onRelease: (r) => shared.released(r) })
  const shared = createSharedAdmission({
    store,
    clock,
    replicaId: name,
    leaseMs: LEASE_MS,
    heartbeatMs: HEARTBEAT_MS,
    expectedReplicas: 2,
    ledger,
    backends,
    headroomRatio: () => 0.05,
    fairPrices: () => undefined,
    onWake: () => ring(),
  })
  const admission = createAdmissionController({
    clock,
    policy: createFifoPolicy({ users: [], options: {} }),
    ledger,
    backends,
    headroomRatio: 0.05,
    deadlineTickMs: 50,
    maxQueueLength: 100,
    earlyReject: false,
    maxBypassMs: 2_000,
    confirmer: shared.confirmer,
    capacity: createMostRoomView({ backends, ledger, headroomRatio: () => 0.05, room: shared.room }),
  })
  ring = () => admission.dispatch()
  let seq = 0
  return {
    ledger,
    shared,
    admission,
    async poll(): Promise<void> {
      const mark = await shared.reconciler.beginPoll('b0')
      shared.reconciler.completePoll(mark)
      await until(() =>
        shared.room(backends()[0] as BackendCapacity, 500) > Number.NEGATIVE_INFINITY ? true : undefined,
      )
    },
    submit(promptTokens: number, predictedOutputTokens: number) {
      const settled: { admission?: Admission; error?: unknown } = {}
      const promise = admission.submit({
        id: `${name}-${++seq}`,
        user: { name: 'u', weight: 1 },
        model: 'm',
        promptTokens,
        predictedOutputTokens,
        deadlineMs: 60_000,
      })
      promise.then(
        (a) => (settled.admission = a),
        (e: unknown) => (settled.error = e),
      )
      return settled
    },
  }
}

describe('admissions confirmed by a shared store', () => {
  it('two replicas racing for the same room: one is confirmed, the other waits at its head and goes next', async () => {
    const clock = createManualClock()
    const store = createMemoryStateStore({ clock })
    const a = replica(store, clock, 'a')
    const b = replica(store, clock, 'b')
    await a.shared.start()
    await b.shared.start()
    await a.poll()
    // Both decide against the same view (room 9,500): each alone would fit 6,000.
    const fromA = a.submit(2_000, 4_000)
    const fromB = b.submit(2_000, 4_000)
    await until(() => (fromA.admission !== undefined || fromB.admission !== undefined ? true : undefined))
    await until(() => (a.ledger.liveCount() + b.ledger.liveCount() === 1 ? true : undefined))
    const [winner, loser] = fromA.admission !== undefined ? [fromA, fromB] : [fromB, fromA]
    const loserReplica = winner === fromA ? b : a
    expect(loser.admission).toBeUndefined()
    expect(loser.error).toBeUndefined()
    expect(loserReplica.admission.queueDepth()).toBe(1)
    // The refusal leaves the request queued until something changes; a release anywhere is that change.
    winner.admission?.finish(4_000)
    await until(() => loser.admission)
    expect(loserReplica.admission.queueDepth()).toBe(0)
    loser.admission?.finish(4_000)
    await until(() => (a.ledger.reservedTokens() + b.ledger.reservedTokens() === 0 ? true : undefined))
    const figures = await store.figures()
    expect(figures[0]?.outstandingByReplica).toEqual({})
  })

  it("a replica that stops renewing its lease loses its reservations within leaseMs, and the others' queues go on", async () => {
    const clock = createManualClock()
    const store = createMemoryStateStore({ clock })
    const dying = replica(store, clock, 'dying')
    const survivor = replica(store, clock, 'survivor')
    await dying.shared.start()
    await survivor.shared.start()
    await survivor.poll()
    const held = dying.submit(3_000, 5_000)
    await until(() => held.admission)
    const waiting = survivor.submit(3_000, 5_000)
    await until(() => (survivor.admission.queueDepth() === 1 ? true : undefined))
    // The process dies: no release, no more heartbeats.
    await dying.shared.close()
    clock.advance(LEASE_MS / 2)
    await Promise.resolve()
    expect(waiting.admission).toBeUndefined()
    // Within leaseMs of its last renewal the dead replica's reservation is freed (the lease's TTL is one
    // heartbeat shorter, so the survivor's next heartbeat reaps it in time).
    clock.advance(LEASE_MS / 2)
    await until(() => waiting.admission)
    expect((await store.figures())[0]?.outstandingByReplica).toEqual({ survivor: 8_000 })
    waiting.admission?.finish(5_000)
    await until(() => (survivor.ledger.reservedTokens() === 0 ? true : undefined))
  })
})
