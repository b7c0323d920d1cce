import type { Clock } from '../core/index.js'
import type {
  AdmitInput,
  AdmitResult,
  FairnessState,
  HeartbeatResult,
  ReservationProgress,
  ReservationRecord,
  SharedBackendFigures,
  StateStore,
  StoreHealth,
  WakeListener,
} from './contracts.js'
import { QUOTA_WINDOW_MS } from './quota-window.js'
import { SlidingQuota } from './quota-window.js'

interface Held {
  readonly requestId: string
  readonly backendId: string
  readonly replicaId: string
  readonly user: string
  readonly promptTokens: number
  readonly predictedTokens: number
  reserved: number
  held: number
  visible: number
  readonly fairShare: { weight: number; wOut: number } | undefined
  readonly quotaCharged: boolean
}

interface Book {
  capacityTokens: number
  usedTokens: number
  issuedSeq: number
  doneSeq: number
  version: number
  readonly live: Set<Held>
  readonly marks: Map<number, Map<string, number>>
}

const MAX_MARKS = 8 // marks of polls that never complete are dropped after this many newer ones

const outstanding = (r: Held): number => Math.max(0, r.reserved - r.visible)

/**
 * The books in one process: the reference the redis store's scripts are checked against (one contract suite
 * runs on both), and the state several gateways built in one process share. Every method does its whole
 * change synchronously before its promise settles, as a Lua script does; leases run on the injected clock and
 * quota windows on the callers' time, so tests step both.
 */
export function createMemoryStateStore(options: { clock: Clock }): StateStore {
  const { clock } = options
  const books = new Map<string, Book>()
  const reservations = new Map<string, Held>()
  const leases = new Map<string, number>()
  const counters = new Map<string, number>()
  /** Queued heads: replica → user → need. */
  const heads = new Map<string, Map<string, number>>()
  const quotas = new Map<string, SlidingQuota>()
  const wakeListeners: WakeListener[] = []
  let lastLeftCounter = 0

  const book = (backendId: string): Book => {
    let found = books.get(backendId)
    if (found === undefined) {
      found = {
        capacityTokens: 0,
        usedTokens: 0,
        issuedSeq: 0,
        doneSeq: 0,
        version: 0,
        live: new Set(),
        marks: new Map(),
      }
      books.set(backendId, found)
    }
    return found
  }
  const figuresOf = (backendId: string): SharedBackendFigures => {
    const b = book(backendId)
    const byReplica: Record<string, number> = {}
    for (const r of b.live) byReplica[r.replicaId] = (byReplica[r.replicaId] ?? 0) + outstanding(r)
    return {
      backendId,
      capacityTokens: b.capacityTokens,
      usedTokens: b.usedTokens,
      pollSeq: b.doneSeq,
      version: b.version,
      outstandingByReplica: byReplica,
    }
  }
  const wake = (backendIds: Iterable<string>): void => {
    const figures = [...new Set(backendIds)].map(figuresOf)
    if (figures.length === 0) return
    // Asynchronously, as a pub/sub message arrives: a listener must not run inside the call that woke it.
    queueMicrotask(() => {
      for (const listener of wakeListeners) listener(figures)
    })
  }
  const quotaOf = (user: string): SlidingQuota => {
    let q = quotas.get(user)
    if (q === undefined) {
      q = new SlidingQuota()
      quotas.set(user, q)
    }
    return q
  }
  const usersWithHeads = (): Map<string, number> => {
    const smallest = new Map<string, number>()
    for (const perUser of heads.values()) {
      for (const [user, need] of perUser) smallest.set(user, Math.min(smallest.get(user) ?? need, need))
    }
    return smallest
  }
  const drop = (r: Held): void => {
    reservations.delete(r.requestId)
    const b = book(r.backendId)
    b.live.delete(r)
    b.version++
  }
  const insert = (r: Held): void => {
    reservations.set(r.requestId, r)
    const b = book(r.backendId)
    b.live.add(r)
    b.version++
  }
  /** Progress of a live reservation: what it holds and reserves only grows. */
  const progress = (r: Held, held: number, reserved: number): void => {
    r.held = Math.max(r.held, held)
    r.reserved = Math.max(r.reserved, reserved)
    book(r.backendId).version++
  }
  const reap = (): number => {
    const now = clock.now()
    let reaped = 0
    const touched = new Set<string>()
    for (const [replica, expiresAt] of leases) {
      if (expiresAt > now) continue
      leases.delete(replica)
      heads.delete(replica)
      for (const r of [...reservations.values()]) {
        if (r.replicaId !== replica) continue
        drop(r)
        touched.add(r.backendId)
        reaped++
      }
    }
    wake(touched)
    return reaped
  }

  const store: StateStore = {
    kind: 'memory',
    async admit(input: AdmitInput): Promise<AdmitResult> {
      if (reservations.has(input.requestId)) return { admitted: true, figures: figuresOf(input.backendId) }
      const b = book(input.backendId)
      if (!(b.capacityTokens > 0)) return { admitted: false, reason: 'no-poll', figures: figuresOf(input.backendId) }
      let sum = 0
      for (const r of b.live) sum += outstanding(r)
      const room = b.capacityTokens - b.usedTokens - input.headroomRatio * b.capacityTokens - sum
      if (input.reservedTokens > room) return { admitted: false, reason: 'kv', figures: figuresOf(input.backendId) }
      if (input.fairShare !== undefined) {
        const mine = counters.get(input.user) ?? 0
        for (const [user, need] of usersWithHeads()) {
          // Yield to a user served less, whose head fits now and would not fit after this admission.
          if (user === input.user || (counters.get(user) ?? 0) >= mine) continue
          if (need <= room && room - input.reservedTokens < need) {
            return { admitted: false, reason: 'fairness', figures: figuresOf(input.backendId) }
          }
        }
      }
      const quota = input.quota
      const limited =
        quota !== undefined && (quota.tokensPerMinute !== undefined || quota.requestsPerMinute !== undefined)
      if (limited) {
        const waitMs = quotaOf(input.user).msUntilFits(input.nowMs, input.reservedTokens, quota)
        if (waitMs > 0) return { admitted: false, reason: 'quota', retryAfterMs: waitMs }
      }
      const predicted = Math.max(0, input.reservedTokens - input.promptTokens)
      const fair = input.fairShare
      insert({
        requestId: input.requestId,
        backendId: input.backendId,
        replicaId: input.replicaId,
        user: input.user,
        promptTokens: input.promptTokens,
        predictedTokens: predicted,
        reserved: input.reservedTokens,
        held: 0,
        visible: 0,
        fairShare: fair === undefined ? undefined : { weight: fair.weight, wOut: fair.wOut },
        quotaCharged: limited,
      })
      if (fair !== undefined) {
        const charge = (fair.wIn * input.promptTokens + fair.wOut * predicted) / fair.weight
        counters.set(input.user, (counters.get(input.user) ?? 0) + charge)
      }
      if (limited) quotaOf(input.user).charge(input.nowMs, input.requestId, input.reservedTokens, 1)
      return { admitted: true, figures: figuresOf(input.backendId) }
    },

    async release(requestId, completionTokens, nowMs) {
      const r = reservations.get(requestId)
      if (r === undefined) return false
      drop(r)
      const actual = Math.max(0, completionTokens)
      if (r.fairShare !== undefined) {
        const settle = (r.fairShare.wOut * (actual - r.predictedTokens)) / r.fairShare.weight
        counters.set(r.user, (counters.get(r.user) ?? 0) + settle)
      }
      if (r.quotaCharged) quotaOf(r.user).settle(nowMs, requestId, actual - r.predictedTokens)
      wake([r.backendId])
      return true
    },

    async beginPoll(replicaId, backendId, updates: readonly ReservationProgress[]) {
      const b = book(backendId)
      for (const p of updates) {
        const r = reservations.get(p.requestId)
        if (r === undefined || r.replicaId !== replicaId) continue
        progress(r, p.heldTokens, p.reservedTokens)
      }
      const seq = ++b.issuedSeq
      const mark = new Map<string, number>()
      for (const r of b.live) if (r.held > 0) mark.set(r.requestId, r.held)
      b.marks.set(seq, mark)
      for (const old of b.marks.keys()) if (old <= seq - MAX_MARKS) b.marks.delete(old)
      return seq
    },

    async completePoll(backendId, pollSeq, figures) {
      const b = book(backendId)
      const mark = b.marks.get(pollSeq)
      for (const seq of b.marks.keys()) if (seq <= pollSeq) b.marks.delete(seq)
      if (pollSeq > b.doneSeq && mark !== undefined) {
        b.doneSeq = pollSeq
        b.version++
        b.capacityTokens = figures.capacityTokens
        b.usedTokens = figures.usedTokens
        for (const [id, held] of mark) {
          const r = reservations.get(id)
          if (r !== undefined && held > r.visible) r.visible = held
        }
        wake([backendId])
      }
      return figuresOf(backendId)
    },

    async heartbeat(replicaId, leaseMs): Promise<HeartbeatResult> {
      leases.set(replicaId, clock.now() + leaseMs)
      const reaped = reap()
      return { replicas: leases.size, reaped }
    },

    async resync(replicaId, leaseMs, live: readonly ReservationRecord[]) {
      leases.set(replicaId, clock.now() + leaseMs)
      // Its queue heads are noted again after a resync: the ones it left behind may be long gone.
      heads.delete(replicaId)
      const wanted = new Map(live.map((r) => [r.requestId, r]))
      const touched = new Set<string>()
      for (const r of [...reservations.values()]) {
        if (r.replicaId !== replicaId || wanted.has(r.requestId)) continue
        drop(r)
        touched.add(r.backendId)
      }
      for (const w of live) {
        touched.add(w.backendId)
        const r = reservations.get(w.requestId)
        if (r !== undefined) {
          progress(r, w.heldTokens, w.reservedTokens)
          continue
        }
        insert({
          requestId: w.requestId,
          backendId: w.backendId,
          replicaId,
          user: w.user,
          promptTokens: w.promptTokens,
          predictedTokens: Math.max(0, w.reservedTokens - w.promptTokens),
          reserved: w.reservedTokens,
          held: w.heldTokens,
          visible: 0,
          fairShare: undefined,
          quotaCharged: false,
        })
      }
      wake(touched)
    },

    async noteHead(replicaId, user, needTokens) {
      const wasQueued = usersWithHeads().has(user)
      let mine = heads.get(replicaId)
      if (needTokens === undefined) {
        mine?.delete(user)
        if (mine?.size === 0) heads.delete(replicaId)
        // The last user with a head anywhere: "last left" is what a newcomer to an empty system is lifted to.
        if (heads.size === 0 && wasQueued) lastLeftCounter = counters.get(user) ?? lastLeftCounter
        return
      }
      if (!wasQueued) {
        // The lift: idleness earns no credit.
        let floor = Number.POSITIVE_INFINITY
        for (const other of usersWithHeads().keys()) floor = Math.min(floor, counters.get(other) ?? 0)
        if (floor === Number.POSITIVE_INFINITY) floor = lastLeftCounter
        counters.set(user, Math.max(counters.get(user) ?? floor, floor))
      }
      if (mine === undefined) {
        mine = new Map()
        heads.set(replicaId, mine)
      }
      mine.set(user, needTokens)
    },

    async figures() {
      return [...books.keys()].map(figuresOf)
    },
    async fairness(): Promise<FairnessState> {
      return { counters: Object.fromEntries(counters), heads: Object.fromEntries(usersWithHeads()) }
    },
    async quotaUsage(user, nowMs) {
      const q = quotas.get(user)
      return q === undefined ? { tokens: 0, requests: 0 } : q.usage(nowMs)
    },
    onWake(listener) {
      wakeListeners.push(listener)
    },
    onReconnect() {
      // One process's memory is never unreachable.
    },
    onDown() {},
    health: (): StoreHealth => ({ up: true, lastError: undefined }),
    async close() {
      wakeListeners.length = 0
    },
  }
  return store
}

export { QUOTA_WINDOW_MS }
