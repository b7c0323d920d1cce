import type { AdmissionConfirmer, ConfirmRequest, ConfirmVerdict } from '../admission/index.js'
import type { Clock, TimerHandle } from '../core/index.js'
import type { Ledger, PollMark, Reservation } from '../ledger/index.js'
import { errors } from '../errors/index.js'
import type { BackendCapacity, PollReconciler } from '../upstream/index.js'
import type { AdmitRefusal, ReservationRecord, SharedBackendFigures, StateStore } from './contracts.js'

/** The last outcome of a confirmation, as the metrics count it. */
export type ConfirmationResult = 'confirmed' | `refused_${'kv' | 'quota' | 'fairness' | 'no_poll'}` | 'error'

export interface SharedAdmissionOptions {
  readonly store: StateStore
  readonly clock: Clock
  readonly replicaId: string
  readonly leaseMs: number
  readonly heartbeatMs: number
  /** The N of degraded mode until the store has told how many replicas are live. */
  readonly expectedReplicas: number
  /** This replica's own ledger: what it admitted, reconciled with its own polls (as with `memory`). */
  readonly ledger: Ledger
  /** This replica's view of the backends (usable, its own latest poll). */
  readonly backends: () => readonly BackendCapacity[]
  readonly headroomRatio: () => number
  /** The VTC prices when the policy is `vtc` (its fairness gate is shared); undefined otherwise. */
  readonly fairPrices: () => { wIn: number; wOut: number } | undefined
  /** Ring the dispatcher: room may have appeared (a release anywhere, a poll), or the mode changed. */
  readonly onWake: () => void
  readonly onModeChange?: (degraded: boolean, reason: string | undefined) => void
  readonly onConfirmation?: (result: ConfirmationResult, seconds: number) => void
}

export interface SharedStateStatus {
  readonly store: string
  readonly up: boolean
  /** Admission runs on this replica's 1/N share of each backend (the store is unreachable). */
  readonly degraded: boolean
  readonly replicas: number
  readonly lastError: string | undefined
  readonly resyncs: number
}

/** What admission needs from the shared state: confirmations, the room per backend, and the poll's marks. */
export interface SharedAdmission {
  readonly confirmer: AdmissionConfirmer
  readonly reconciler: PollReconciler
  /** The room on a backend, for `createMostRoomView({ room })`. */
  room(backend: BackendCapacity, headroomTokens: number): number
  /** The local ledger's `onRelease`: release the shared reservation too, exactly once. */
  released(reservation: Reservation): void
  status(): SharedStateStatus
  start(): Promise<void>
  close(): Promise<void>
}

interface Mark {
  readonly local: PollMark
  readonly seq: number | undefined
}

const held = (r: Reservation): number => (r.started ? r.promptTokens + r.generatedTokens : 0)

/**
 * A replica's side of the shared ledger. The dispatcher stays synchronous: it decides against a cached copy of
 * the shared figures (the newest poll per backend and every replica's outstanding reservations), refreshed by
 * every answer of the store and every wake-up it publishes; each admission is then confirmed by the store's
 * atomic re-check before its request goes on (`AdmissionConfirmer`). Room being confirmed counts as taken.
 *
 * Degraded mode: when the store is unreachable (or slower than `commandTimeoutMs`), this replica admits alone
 * against `1/N` of each backend (N the last known number of live replicas): Σ reserved here ≤ (capacity −
 * headroom) / N, and never beyond what its own poll shows free less everyone's outstanding as last known. When
 * the store answers again the replica re-asserts exactly its live reservations (`resync`) and leaves degraded
 * mode; a reservation is in the store at most once (ids are per replica), so nothing is released twice.
 */
export function createSharedAdmission(options: SharedAdmissionOptions): SharedAdmission {
  const { store, clock, replicaId, ledger } = options
  // The lease must outlive one missed renewal (see ttlMs below).
  if (!(options.leaseMs >= 2 * options.heartbeatMs)) {
    throw errors.invalidConfig([`state.leaseMs: must be at least 2 × state.heartbeatMs (${2 * options.heartbeatMs})`])
  }
  const figures = new Map<string, SharedBackendFigures>()
  const pending = new Map<string, number>()
  /** This replica's live reservations, and whether the store holds each. */
  const live = new Map<Reservation, { user: string; inStore: boolean }>()
  /** The need of each user's queue head here, for the fairness gate (re-noted after a resync). */
  const heads = new Map<string, number>()
  const dirtyHeads = new Map<string, number | undefined>()
  let frozenOthers = new Map<string, number>()
  let degradedSinceMs = 0
  let replicas = Math.max(1, options.expectedReplicas)
  let degraded = store.health().up === false
  let lastError = store.health().lastError
  let epoch = 0
  let changes = 0
  let resyncs = 0
  let recovering = false
  let closed = false
  let heartbeat: TimerHandle | undefined

  const storeId = (r: Reservation): string => `${replicaId}/${r.requestId}`
  // The lease's TTL in the store: a lapsed lease is reaped by another replica's next heartbeat, up to one
  // heartbeat later, so a dead replica's reservations are gone within leaseMs of its last renewal.
  const ttlMs = options.leaseMs - options.heartbeatMs
  const wake = (): void => {
    epoch++
    options.onWake()
  }
  /** Newest figures win; answers and wake-ups travel on two connections and may cross. */
  const accept = (f: SharedBackendFigures): void => {
    const known = figures.get(f.backendId)
    if (known === undefined || f.version >= known.version) figures.set(f.backendId, f)
  }
  const enterDegraded = (reason: unknown): void => {
    lastError = reason instanceof Error ? reason.message : String(reason)
    if (degraded || closed) return
    degraded = true
    degradedSinceMs = clock.now()
    // What the other replicas had outstanding when the store went away (see `room`).
    frozenOthers = new Map()
    for (const f of figures.values()) {
      let others = 0
      for (const [replica, tokens] of Object.entries(f.outstandingByReplica))
        if (replica !== replicaId) others += tokens
      frozenOthers.set(f.backendId, others)
    }
    options.onModeChange?.(true, lastError)
    wake()
  }

  const records = (): ReservationRecord[] =>
    [...live].map(([r, info]) => ({
      requestId: storeId(r),
      backendId: r.backendId,
      user: info.user,
      promptTokens: r.promptTokens,
      reservedTokens: r.reservedTokens,
      heldTokens: held(r),
    }))

  /** Re-assert this replica's state until nothing changed meanwhile, then leave degraded mode. */
  const recover = async (): Promise<void> => {
    if (recovering || closed) return
    recovering = true
    try {
      for (let attempt = 0; ; attempt++) {
        const before = changes
        const snapshot = [...live.keys()]
        await store.resync(replicaId, ttlMs, records())
        if (changes !== before && attempt < 5) continue
        const beat = await store.heartbeat(replicaId, ttlMs)
        replicas = Math.max(1, beat.replicas)
        for (const [user, need] of heads) void store.noteHead(replicaId, user, need).catch(() => undefined)
        // A restarted store numbers its versions from 0 again: what was cached before is no guide to order.
        figures.clear()
        for (const f of await store.figures()) accept(f)
        if (changes !== before) continue
        for (const r of snapshot) {
          const info = live.get(r)
          if (info !== undefined) info.inStore = true
        }
        break
      }
      resyncs++
      if (degraded) {
        degraded = false
        lastError = undefined
        options.onModeChange?.(false, undefined)
      }
      wake()
    } catch (err) {
      enterDegraded(err)
    } finally {
      recovering = false
    }
  }

  const flushHeads = (): void => {
    for (const [user, need] of dirtyHeads) {
      if (need === undefined) heads.delete(user)
      else heads.set(user, need)
      if (!degraded) void store.noteHead(replicaId, user, need).catch(enterDegraded)
    }
    dirtyHeads.clear()
  }

  const refusal = (reason: AdmitRefusal, retryAfterMs: number | undefined): ConfirmVerdict => {
    if (reason !== 'quota' || retryAfterMs === undefined) return { confirmed: false }
    return { confirmed: false, retryAfterMs, quotaReason: 'the quota shared by every replica' }
  }

  const confirmer: AdmissionConfirmer = {
    epoch: () => epoch,
    noteHead(user, needTokens) {
      if (options.fairPrices() === undefined) return
      if (dirtyHeads.size === 0) queueMicrotask(flushHeads)
      dirtyHeads.set(user.name, needTokens)
    },
    confirm(request: ConfirmRequest): Promise<ConfirmVerdict> | undefined {
      const { reservation, placement } = request
      changes++
      live.set(reservation, { user: request.request.user.name, inStore: false })
      // Degraded: decided here under the 1/N rule; the store learns of it at the resync.
      if (degraded) return undefined
      const backendId = placement.backendId
      const need = reservation.reservedTokens
      pending.set(backendId, (pending.get(backendId) ?? 0) + need)
      const prices = request.policyName === 'vtc' ? options.fairPrices() : undefined
      const { limitTokens, limitRequests } = request.limits
      const weight = request.request.user.weight > 0 ? request.request.user.weight : 1
      const startedMs = clock.now()
      const done = (result: ConfirmationResult): void => {
        pending.set(backendId, (pending.get(backendId) ?? need) - need)
        options.onConfirmation?.(result, (clock.now() - startedMs) / 1_000)
      }
      return store
        .admit({
          replicaId,
          backendId,
          requestId: storeId(reservation),
          user: request.request.user.name,
          promptTokens: reservation.promptTokens,
          reservedTokens: need,
          headroomRatio: options.headroomRatio(),
          nowMs: clock.wallNow(),
          ...(prices === undefined ? {} : { fairShare: { weight, ...prices } }),
          ...(limitTokens === undefined && limitRequests === undefined
            ? {}
            : {
                quota: {
                  ...(limitTokens === undefined ? {} : { tokensPerMinute: limitTokens }),
                  ...(limitRequests === undefined ? {} : { requestsPerMinute: limitRequests }),
                },
              }),
        })
        .then(
          (result): ConfirmVerdict => {
            if (result.figures !== undefined) accept(result.figures)
            if (result.admitted) {
              const info = live.get(reservation)
              if (info !== undefined) info.inStore = true
              done('confirmed')
              return { confirmed: true }
            }
            done(`refused_${result.reason === 'no-poll' ? 'no_poll' : result.reason}`)
            return refusal(result.reason, result.retryAfterMs)
          },
          (err: unknown): ConfirmVerdict => {
            done('error')
            enterDegraded(err)
            return { confirmed: false }
          },
        )
    },
  }

  const reconciler: PollReconciler<Mark> = {
    beginPoll(backendId) {
      const local = ledger.beginPoll(backendId)
      if (degraded) return { local, seq: undefined }
      const progress = []
      for (const [r, info] of live) {
        if (info.inStore && r.backendId === backendId) {
          progress.push({ requestId: storeId(r), heldTokens: held(r), reservedTokens: r.reservedTokens })
        }
      }
      return store.beginPoll(replicaId, backendId, progress).then(
        (seq): Mark => ({ local, seq }),
        (err: unknown): Mark => {
          enterDegraded(err)
          return { local, seq: undefined }
        },
      )
    },
    completePoll(mark) {
      ledger.completePoll(mark.local)
      const seq = mark.seq
      if (seq === undefined || degraded) return
      const backend = options.backends().find((b) => b.id === mark.local.backendId)
      if (backend === undefined) return
      const { capacityTokens, usedTokens } = backend
      store.completePoll(backend.id, seq, { capacityTokens, usedTokens }).then((f) => {
        accept(f)
        wake()
      }, enterDegraded)
    },
  }

  store.onWake((list) => {
    for (const f of list) accept(f)
    if (!degraded) wake()
  })
  store.onDown(enterDegraded)
  store.onReconnect(() => void recover())

  return {
    confirmer,
    reconciler: reconciler as PollReconciler,
    room(backend, headroomTokens) {
      if (degraded) {
        // The rule that keeps replicas apart: Σ reserved here ≤ a 1/N share of what the backend may hold.
        const share = (backend.capacityTokens - headroomTokens) / replicas - ledger.reservedTokens(backend.id)
        // And what this replica's own poll shows free, less what the others had admitted but the poll could
        // not see yet when the store went away. That part turns visible (or ends) as their requests start, so
        // it is counted in full at first and fades out over one lease: counted for ever it would stay
        // double-counted once in the poll, and starve the replica for the whole outage.
        const fade = Math.max(0, 1 - (clock.now() - degradedSinceMs) / options.leaseMs)
        const others = (frozenOthers.get(backend.id) ?? 0) * fade
        const polled =
          backend.capacityTokens - backend.usedTokens - headroomTokens - others - ledger.outstandingTokens(backend.id)
        return Math.min(share, polled)
      }
      const f = figures.get(backend.id)
      // No shared poll of it yet (a fresh store): nothing can be checked against it.
      if (f === undefined || !(f.capacityTokens > 0)) return Number.NEGATIVE_INFINITY
      let outstanding = pending.get(backend.id) ?? 0
      for (const tokens of Object.values(f.outstandingByReplica)) outstanding += tokens
      return f.capacityTokens - f.usedTokens - headroomTokens - outstanding
    },
    released(reservation) {
      const info = live.get(reservation)
      if (info === undefined) return
      live.delete(reservation)
      changes++
      // Not in the store (refused, or admitted while degraded): the resync already leaves it out.
      if (!info.inStore || degraded) return
      store.release(storeId(reservation), reservation.generatedTokens, clock.wallNow()).catch(enterDegraded)
    },
    status: () => ({
      store: store.kind,
      up: store.health().up,
      degraded,
      replicas,
      lastError: lastError ?? store.health().lastError,
      resyncs,
    }),
    async start() {
      heartbeat = clock.setInterval(() => {
        if (degraded) {
          if (store.health().up) void recover()
          return
        }
        store.heartbeat(replicaId, ttlMs).then((beat) => {
          replicas = Math.max(1, beat.replicas)
        }, enterDegraded)
      }, options.heartbeatMs)
      heartbeat.unref?.()
      if (degraded) {
        options.onModeChange?.(true, lastError)
        return
      }
      // A fresh start: clear whatever a replica of the same name left, take the lease, read the figures.
      degraded = true
      await recover()
    },
    async close() {
      closed = true
      if (heartbeat !== undefined) clock.clearInterval(heartbeat)
    },
  }
}
