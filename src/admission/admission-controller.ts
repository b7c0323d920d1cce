import { appendNode, unlinkNode, type Clock, type TimerHandle } from '../core/index.js'
import { errors, type KvgateError } from '../errors/index.js'
import type { Ledger, Reservation } from '../ledger/index.js'
import type { Policy, PolicyRequest, PolicyUser, QuotaDecision } from '../policies/index.js'
import { DeadlineHeap } from './deadline-heap.js'
import { DrainRate, formatDuration, rejectionHeaders } from './retry-after.js'

/**
 * The admission queue: per-user FIFO queues, the dispatcher that admits heads when the KV cache has room, and
 * the deadline tick that answers 429 to what waited too long.
 *
 * Division of labour: the policy orders *users* (`candidates()`) and gates quotas; this module owns the
 * requests (one FIFO per user), the KV check against the ledger and the backends' polled usage, deadlines,
 * and the rejections with their `retry-after`.
 *
 * KV check, per backend: `room = (capacity − used) − headroomRatio × capacity − ledger.outstanding(backend)`.
 * A head is admitted to the backend with the most room when `need ≤ room`, with
 * `need = prompt + predicted output` (capped at the largest backend's usable capacity, so a request whose
 * prediction exceeds a whole cache can still run alone; only a *prompt* that exceeds it is refused, 400).
 *
 * Head-of-line rule (work-conserving with bounded bypass): the dispatcher tries heads in the policy's order.
 * A head that passes its quota but does not fit is *bypassed*: later candidates that fit are admitted, so KV
 * does not sit idle while small requests wait. The first time a head is bypassed its clock starts; once it
 * has been bypassed for `maxBypassMs` the dispatcher stops at it and admits nothing behind it until it fits,
 * so a large request is delayed by small ones at most `maxBypassMs` (0 = strict head-of-line, as in the VTC
 * artifact). A head that cannot fit on any usable backend even when empty never blocks others.
 *
 * Cost per decision: the dispatcher tries at most `MAX_CANDIDATES_PER_DECISION` users (so policies should
 * yield quota-blocked users after ready ones, as the built-in ones do), skips the scan altogether when the room
 * is below the smallest queued need (an O(1) bound kept per power of two), and every structure it touches
 * (per-user intrusive lists, the deadline heap, running totals) is O(1) or O(log n): a decision with 10,000
 * queued requests costs about what it costs with 10, and nothing ever walks the whole queue except the debug
 * listing `queued()`, a reload and shutdown.
 */

export interface BackendCapacity {
  readonly id: string
  readonly capacityTokens: number
  /** KV tokens in use at the latest poll. */
  readonly usedTokens: number
  /** False while the backend's metrics are stale or failing: nothing is admitted to it. */
  readonly usable: boolean
}

export interface AdmissionTicket {
  readonly id: string
  readonly user: PolicyUser
  readonly model: string
  readonly promptTokens: number
  readonly predictedOutputTokens: number
  /** Longest wait in the queue, ms. */
  readonly deadlineMs: number
  /** Aborted when the client goes away: a queued request leaves the queue and rejects with 499. */
  readonly signal?: AbortSignal
}

export interface Admission {
  readonly id: string
  readonly backendId: string
  readonly waitedMs: number
  readonly reservation: Reservation
  /** The request as the admitting policy was charged for it (need may be capped, see above). */
  readonly request: PolicyRequest
  readonly finished: boolean
  /** The first token arrived (the backend allocated the prompt's blocks). */
  firstToken(): void
  /** `n` more completion tokens streamed: grows the reservation if needed and charges the policy. */
  recordTokens(n: number): void
  /** Idempotent: releases the reservation, settles the policy, runs the dispatcher. */
  finish(completionTokens: number, reason?: string): void
}

/** Low-cardinality outcomes for metric labels (the error carries the detail). */
export type AdmissionOutcome =
  | 'admitted'
  | 'rejected_deadline'
  | 'rejected_queue_full'
  | 'rejected_early'
  | 'rejected_quota'
  | 'rejected_unavailable'
  | 'invalid_request'
  | 'cancelled_queued'

export interface AdmissionEvent {
  readonly kind: 'admitted' | 'rejected' | 'cancelled' | 'finished'
  readonly id: string
  readonly user: string
  readonly model: string
  /** Time spent in the queue (0 for an immediate rejection). */
  readonly waitedMs: number
  /** For admitted/rejected/cancelled. */
  readonly outcome?: AdmissionOutcome
  /** The error code of a rejection or cancellation. */
  readonly reason?: string
  readonly backendId?: string
  /** The predicted wait a rejection's retry-after came from. */
  readonly retryAfterMs?: number
}

export interface QueuedInfo {
  readonly id: string
  readonly user: string
  readonly model: string
  readonly promptTokens: number
  readonly predictedOutputTokens: number
  readonly needTokens: number
  readonly waitedMs: number
  /** Time left until the deadline tick rejects it. */
  readonly deadlineInMs: number
  /** How long the dispatcher has been admitting others past it (null if never bypassed). */
  readonly bypassedForMs: number | null
  /** Its quota held it back at the last dispatch. */
  readonly quotaBlocked: boolean
}

export interface AdmissionStats {
  readonly queueDepth: number
  readonly queuedTokens: number
  readonly activeUsers: number
  /** Tokens of need admitted per second of backlog (undefined until measured). */
  readonly drainTokensPerSecond: number | undefined
}

export interface AdmissionController {
  /** Resolves when admitted; rejects with a KvgateError (429, 503, 400 or 499). */
  submit(ticket: AdmissionTicket): Promise<Admission>
  /** Try to admit queued heads now (the gateway calls it after every metrics poll). */
  dispatch(): void
  /** Reload: queued requests move to the new policy in arrival order; admitted ones settle with the old. */
  setPolicy(policy: Policy): void
  /**
   * Reload admission tuning in place: queued requests keep their place and their deadlines (a new default
   * deadline applies to new requests, which the caller sets per ticket). A shorter queue bound rejects no one
   * already queued; it refuses new requests until the queue is below it.
   */
  configure(tuning: Partial<AdmissionTuning>): void
  queueDepth(): number
  queued(): QueuedInfo[]
  stats(): AdmissionStats
  /** The wait a new request of `needTokens` from `user` would see now, ms (what retry-after is made of). */
  predictWaitMs(user: PolicyUser, needTokens: number): number
  /** Reject everything queued with shutting_down and stop the tick; later submits are refused the same way. */
  close(): void
}

/** The options a reload may change in place (`configure`). */
export type AdmissionTuning = Pick<
  AdmissionControllerOptions,
  'headroomRatio' | 'deadlineTickMs' | 'maxQueueLength' | 'earlyReject' | 'maxBypassMs'
>

export interface AdmissionControllerOptions {
  clock: Clock
  policy: Policy
  ledger: Ledger
  /** Current capacity and polled usage per backend; called once per decision, keep it cheap. */
  backends: () => readonly BackendCapacity[]
  /** Share of each backend's capacity kept free (block rounding, requests kvgate does not see). */
  headroomRatio: number
  deadlineTickMs: number
  maxQueueLength: number
  /** Reject at once when the predicted wait already exceeds the request's deadline. */
  earlyReject: boolean
  /** Longest a head that does not fit may be bypassed by others that do; 0 = strict head-of-line. */
  maxBypassMs: number
  onEvent?: (event: AdmissionEvent) => void
}

/**
 * Options for every error admission answers with (429, 499, 503): a rejection is an outcome, not a bug, so no
 * stack trace is captured (docs/benchmarks.md, finding 4: ~25% of a mass deadline expiry was `new KvgateError`).
 */
const OUTCOME = { captureStack: false } as const

/**
 * Deadline expiries handled in one go at most; the rest continue on a zero-delay timer, after the I/O that
 * waited (streams being relayed). 10,000 requests timing out together held the event loop ~0.1 s
 * (docs/benchmarks.md, finding 4); 1,000 at ~10 µs each is ~10 ms.
 */
export const MAX_EXPIRIES_PER_TICK = 1_000

/** Users tried per decision at most: bounds a decision's cost when many heads are quota-blocked or too big. */
export const MAX_CANDIDATES_PER_DECISION = 32
/**
 * Until a backlog has been measured, assume a backend's usable KV turns over every 10 seconds (requests of a
 * few hundred tokens at tens of tokens/s). Used only for retry-after, never for early rejection.
 */
const COLD_TURNOVER_MS = 10_000 // 10 seconds
/** Smallest drain rate trusted (tokens/ms); below it the wait is the longest predicted. */
const MIN_DRAIN_TOKENS_PER_MS = 1e-6
/** Predicted waits are capped here: past it the figure means only "far beyond any deadline". */
const MAX_PREDICTED_WAIT_MS = 3_600_000 // 1 hour

interface QueueItem {
  readonly seq: number
  readonly ticket: AdmissionTicket
  readonly request: PolicyRequest
  readonly needTokens: number
  readonly enqueuedAtMs: number
  readonly deadlineAtMs: number
  readonly userQueue: UserQueue
  heapIndex: number
  prev: QueueItem | undefined
  next: QueueItem | undefined
  queued: boolean
  bypassedSinceMs: number | undefined
  /** The last quota denial, kept for the deadline rejection's reason and retry-after. */
  quotaDenied: Extract<QuotaDecision, { allowed: false }> | undefined
  resolve: (admission: Admission) => void
  reject: (error: KvgateError) => void
  onAbort: (() => void) | undefined
}

/** One user's FIFO as an intrusive doubly-linked list: O(1) push, pop and removal from the middle (abort, deadline). */
interface UserQueue {
  readonly name: string
  /** Weight counted into the active weight while the queue is non-empty (kept so a reload cannot skew it). */
  weight: number
  head: QueueItem | undefined
  tail: QueueItem | undefined
  size: number
  needTokens: number
}

class AdmissionImpl implements Admission {
  readonly id: string
  readonly backendId: string
  readonly waitedMs: number
  readonly reservation: Reservation
  readonly request: PolicyRequest
  readonly #policy: Policy
  readonly #controller: AdmissionControllerImpl
  readonly #model: string
  #finished = false

  constructor(
    controller: AdmissionControllerImpl,
    policy: Policy,
    item: QueueItem,
    backendId: string,
    reservation: Reservation,
    waitedMs: number,
  ) {
    this.#controller = controller
    this.#policy = policy
    this.id = item.ticket.id
    this.#model = item.ticket.model
    this.backendId = backendId
    this.waitedMs = waitedMs
    this.reservation = reservation
    this.request = item.request
  }

  get finished(): boolean {
    return this.#finished
  }

  firstToken(): void {
    this.reservation.markStarted()
  }

  recordTokens(n: number): void {
    if (this.#finished || !(n > 0)) return
    this.reservation.addGenerated(n)
    this.#policy.onTokens(this.request, n, this.#controller.nowMs())
  }

  finish(completionTokens: number, reason = 'finished'): void {
    if (this.#finished) return
    this.#finished = true
    this.reservation.release(reason)
    // The policy that charged the admission settles it, even after a reload switched policies: a new
    // policy never saw this request's onAdmit and could not settle a charge it did not make.
    this.#policy.onFinish(this.request, Math.max(0, completionTokens), this.#controller.nowMs())
    this.#controller.emit({
      kind: 'finished',
      id: this.id,
      user: this.request.user.name,
      model: this.#model,
      waitedMs: this.waitedMs,
      backendId: this.backendId,
      reason,
    })
    this.#controller.dispatch()
  }
}

interface BestBackend {
  id: string
  roomTokens: number
  /** Largest capacity × (1 − headroom) among usable backends: the most a request can need and fit now. */
  maxUsableTokens: number
  /** The same among all backends with a known capacity, usable or not: the most a request can ever need. */
  maxKnownTokens: number
  /** Room summed over usable backends (negative rooms count as 0): what the queue can take now, anywhere. */
  totalRoomTokens: number
}

class AdmissionControllerImpl implements AdmissionController {
  #options: AdmissionControllerOptions
  readonly #clock: Clock
  readonly #ledger: Ledger
  #policy: Policy
  readonly #queues = new Map<string, UserQueue>()
  readonly #heap = new DeadlineHeap<QueueItem>()
  readonly #drain: DrainRate
  #tick: TimerHandle
  /** Set while a capped deadline sweep has more to reject: no decision is made until it is done. */
  #expiryContinuation: TimerHandle | undefined
  #seq = 0
  #depth = 0
  #queuedNeedTokens = 0
  #activeWeight = 0
  /**
   * Queued requests per bit length of their need (bucket b holds needs in [2^(b−1), 2^b)): a lower bound on the
   * smallest queued need in O(1), so a decision with less room than that skips asking the policy at all — the
   * common case right after the one request that fitted took the room.
   */
  readonly #needBuckets = new Uint32Array(34)
  /** Lowest non-empty bucket (34 = none); raised lazily when that bucket empties. */
  #minNeedBucket = 34
  #kvBound = false
  #closed = false
  #dispatching = false
  #dispatchAgain = false

  constructor(options: AdmissionControllerOptions) {
    validateTuning(options)
    this.#options = options
    this.#clock = options.clock
    this.#ledger = options.ledger
    this.#policy = options.policy
    this.#drain = new DrainRate(this.#clock.now())
    this.#tick = this.#clock.setInterval(() => this.#onTick(), options.deadlineTickMs)
    this.#tick.unref?.()
  }

  nowMs(): number {
    return this.#clock.now()
  }

  /**
   * Events go to metrics and logs after the state change they report. A throwing handler must not leave a
   * request half-admitted (reserved but never resolved: a leak), so it is reported as a process warning.
   */
  emit(event: AdmissionEvent): void {
    try {
      this.#options.onEvent?.(event)
    } catch (err) {
      process.emitWarning(`kvgate admission onEvent handler threw: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  // --- submit ---------------------------------------------------------------------------------------------

  submit(ticket: AdmissionTicket): Promise<Admission> {
    const now = this.#clock.now()
    const prompt = Math.max(0, Math.ceil(ticket.promptTokens))
    const predicted = Math.max(0, Math.ceil(ticket.predictedOutputTokens))
    const immediate = (outcome: AdmissionOutcome, error: KvgateError, retryAfterMs?: number): Promise<Admission> => {
      this.emit({
        kind: outcome === 'cancelled_queued' ? 'cancelled' : 'rejected',
        id: ticket.id,
        user: ticket.user.name,
        model: ticket.model,
        waitedMs: 0,
        outcome,
        reason: error.code,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      })
      return Promise.reject(error)
    }

    if (this.#closed) return immediate('rejected_unavailable', errors.shuttingDown([], OUTCOME))
    if (ticket.signal?.aborted === true)
      return immediate('cancelled_queued', errors.requestCancelled(['waited for admission'], OUTCOME))
    const best = this.#bestBackend()
    if (best === undefined)
      return immediate(
        'rejected_unavailable',
        errors.noBackendAvailable(['every backend is down or its metrics are stale'], OUTCOME),
      )
    // Against every backend with a known capacity, usable now or not: a big backend that is briefly stale
    // must not turn its requests into 400s.
    if (prompt > best.maxKnownTokens) {
      return immediate(
        'invalid_request',
        errors.requestExceedsKvCapacity([prompt, Math.floor(best.maxKnownTokens)], { param: 'messages' }),
      )
    }
    // A prediction larger than a whole cache is capped: the request runs alone on an empty backend and its
    // reservation grows as it streams.
    const needTokens = Math.min(prompt + predicted, Math.floor(best.maxKnownTokens))
    if (this.#depth >= this.#options.maxQueueLength) {
      const waitMs = this.predictWaitMs(ticket.user, needTokens)
      const error = errors.queueFull([this.#depth, formatDuration(Math.max(1_000, waitMs))], {
        ...OUTCOME,
        headers: rejectionHeaders(errors.queueFull.code, waitMs, this.#policy.rateLimits(ticket.user, now)),
      })
      return immediate('rejected_queue_full', error, waitMs)
    }

    return new Promise<Admission>((resolve, reject) => {
      const userQueue = this.#userQueue(ticket.user)
      const item: QueueItem = {
        seq: ++this.#seq,
        ticket,
        request: {
          id: ticket.id,
          user: ticket.user,
          promptTokens: prompt,
          predictedOutputTokens: needTokens - prompt,
          enqueuedAtMs: now,
        },
        needTokens,
        enqueuedAtMs: now,
        deadlineAtMs: now + Math.max(0, ticket.deadlineMs),
        userQueue,
        heapIndex: -1,
        prev: undefined,
        next: undefined,
        queued: true,
        bypassedSinceMs: undefined,
        quotaDenied: undefined,
        resolve,
        reject,
        onAbort: undefined,
      }
      this.#enqueue(item, now)
      if (ticket.signal !== undefined) {
        const onAbort = (): void => this.#cancel(item)
        item.onAbort = onAbort
        ticket.signal.addEventListener('abort', onAbort, { once: true })
      }
      try {
        this.dispatch()
        if (item.queued && this.#options.earlyReject) this.#maybeRejectEarly(item)
      } catch (err) {
        // A policy bug surfaced while this request was queued: take it out again so nothing can admit a
        // request whose promise has already rejected (its reservation would never be released).
        if (item.queued) {
          this.#unlink(item, now)
          try {
            this.#policy.onRemove(item.request, now)
          } catch {
            // The policy is already failing; the error that matters is rethrown below.
          }
        }
        throw err
      }
    })
  }

  #maybeRejectEarly(item: QueueItem): void {
    const now = this.#clock.now()
    // Only a measured drain rate may reject early: a guess must not turn away a burst the gateway could serve.
    const rate = this.#drain.tokensPerMs(now)
    if (rate === undefined) return
    const waitMs = this.#waitMs(item.userQueue, item.needTokens, true, now)
    if (waitMs <= item.ticket.deadlineMs) return
    this.#remove(item, now)
    const error = errors.predictedWaitTooLong(
      [formatDuration(waitMs), formatDuration(item.ticket.deadlineMs), formatDuration(Math.max(1_000, waitMs))],
      {
        ...OUTCOME,
        headers: rejectionHeaders(
          errors.predictedWaitTooLong.code,
          waitMs,
          this.#policy.rateLimits(item.ticket.user, now),
        ),
      },
    )
    this.#rejectItem(item, 'rejected_early', error, now, waitMs)
  }

  // --- queue structure --------------------------------------------------------------------------------------

  #userQueue(user: PolicyUser): UserQueue {
    let queue = this.#queues.get(user.name)
    if (queue === undefined) {
      queue = { name: user.name, weight: user.weight, head: undefined, tail: undefined, size: 0, needTokens: 0 }
      this.#queues.set(user.name, queue)
    }
    return queue
  }

  #enqueue(item: QueueItem, now: number): void {
    const queue = item.userQueue
    if (queue.size === 0) {
      queue.weight = positiveWeight(item.ticket.user.weight)
      this.#activeWeight += queue.weight
    }
    appendNode(queue, item)
    queue.size++
    queue.needTokens += item.needTokens
    const bucket = needBucket(item.needTokens)
    this.#needBuckets[bucket]!++
    if (bucket < this.#minNeedBucket) this.#minNeedBucket = bucket
    this.#heap.push(item)
    this.#depth++
    this.#queuedNeedTokens += item.needTokens
    this.#policy.onEnqueue(item.request, now)
  }

  /** Take an item out of every structure (not the policy: the caller says whether it was admitted or removed). */
  #unlink(item: QueueItem, now: number): void {
    item.queued = false
    const queue = item.userQueue
    unlinkNode(queue, item)
    queue.size--
    queue.needTokens -= item.needTokens
    const bucket = needBucket(item.needTokens)
    if (--this.#needBuckets[bucket]! === 0 && bucket === this.#minNeedBucket) {
      while (this.#minNeedBucket < 34 && this.#needBuckets[this.#minNeedBucket] === 0) this.#minNeedBucket++
    }
    if (queue.size === 0) {
      this.#activeWeight -= queue.weight
      // Forget idle users so the map is bounded by users with waiting requests.
      this.#queues.delete(queue.name)
    }
    this.#heap.remove(item)
    this.#queuedNeedTokens -= item.needTokens
    if (--this.#depth === 0) {
      this.#setKvBound(false, now)
      // Sums of integers stay exact, but reset anyway so no drift can ever survive an empty queue.
      this.#queuedNeedTokens = 0
      this.#activeWeight = 0
    }
    if (item.onAbort !== undefined) {
      item.ticket.signal?.removeEventListener('abort', item.onAbort)
      item.onAbort = undefined
    }
  }

  /** Left the queue without admission: the policy forgets it. */
  #remove(item: QueueItem, now: number): void {
    this.#unlink(item, now)
    this.#policy.onRemove(item.request, now)
  }

  #rejectItem(
    item: QueueItem,
    outcome: AdmissionOutcome,
    error: KvgateError,
    now: number,
    retryAfterMs?: number,
  ): void {
    this.emit({
      kind: outcome === 'cancelled_queued' ? 'cancelled' : 'rejected',
      id: item.ticket.id,
      user: item.ticket.user.name,
      model: item.ticket.model,
      waitedMs: now - item.enqueuedAtMs,
      outcome,
      reason: error.code,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    })
    item.reject(error)
  }

  #cancel(item: QueueItem): void {
    if (!item.queued) return
    const now = this.#clock.now()
    this.#remove(item, now)
    this.#rejectItem(item, 'cancelled_queued', errors.requestCancelled(['waited for admission'], OUTCOME), now)
    // It may have been the head others were held behind.
    this.dispatch()
  }

  // --- dispatcher -------------------------------------------------------------------------------------------

  #bestBackend(): BestBackend | undefined {
    let best: BestBackend | undefined
    let maxUsableTokens = 0
    let maxKnownTokens = 0
    let totalRoomTokens = 0
    for (const backend of this.#options.backends()) {
      if (!(backend.capacityTokens > 0)) continue
      const headroom = this.#options.headroomRatio * backend.capacityTokens
      maxKnownTokens = Math.max(maxKnownTokens, backend.capacityTokens - headroom)
      if (!backend.usable) continue
      maxUsableTokens = Math.max(maxUsableTokens, backend.capacityTokens - headroom)
      const room = backend.capacityTokens - backend.usedTokens - headroom - this.#ledger.outstandingTokens(backend.id)
      totalRoomTokens += Math.max(0, room)
      if (best === undefined || room > best.roomTokens) {
        best = { id: backend.id, roomTokens: room, maxUsableTokens: 0, maxKnownTokens: 0, totalRoomTokens: 0 }
      }
    }
    if (best !== undefined) {
      best.maxUsableTokens = maxUsableTokens
      best.maxKnownTokens = maxKnownTokens
      best.totalRoomTokens = totalRoomTokens
    }
    return best
  }

  dispatch(): void {
    // Re-entrancy: an admission's event handler or a finish() inside one may ring again; run once more after.
    if (this.#dispatching) {
      this.#dispatchAgain = true
      return
    }
    // A capped sweep is still rejecting expired requests: deciding now could admit one past its deadline.
    // The continuation dispatches when the sweep is done.
    if (this.#expiryContinuation !== undefined) return
    this.#dispatching = true
    try {
      if (!this.#closed) this.#expireDue(this.#clock.now())
      if (this.#expiryContinuation !== undefined) return
      do {
        this.#dispatchAgain = false
        while (this.#admitOne()) {
          // Each admission changes the room and may change the policy's order: decide again from the top.
        }
      } while (this.#dispatchAgain)
    } finally {
      this.#dispatching = false
    }
  }

  /** One decision: admit the first head (in the policy's order) that passes its quota and fits. */
  #admitOne(): boolean {
    if (this.#closed || this.#depth === 0) return false
    const now = this.#clock.now()
    const best = this.#bestBackend()
    if (best === undefined) {
      this.#setKvBound(false, now) // an outage, not KV contention: it says nothing about the drain rate
      return false
    }
    if (best.roomTokens < this.#smallestNeedBound()) {
      // Nothing queued can fit: skip the scan. Whether requests wait on KV or only on quotas is read off the
      // first candidate (policies put quota-blocked users behind ready ones), at the cost of one look.
      this.#setKvBound(this.#firstHeadPassesQuota(now), now)
      return false
    }
    let tried = 0
    let heldByKv = false
    for (const userName of this.#policy.candidates(now)) {
      if (++tried > MAX_CANDIDATES_PER_DECISION) break
      const head = this.#queues.get(userName)?.head
      if (head === undefined) continue
      const quota = this.#policy.checkQuota(head.request, now)
      if (!quota.allowed) {
        head.quotaDenied = quota
        continue
      }
      head.quotaDenied = undefined
      if (head.needTokens <= best.roomTokens) {
        this.#admit(head, best.id, now)
        return true
      }
      heldByKv = true
      // Too big for any usable backend even when empty (a large backend is down): it must not hold others.
      if (head.needTokens > best.maxUsableTokens) continue
      head.bypassedSinceMs ??= now
      if (now - head.bypassedSinceMs >= this.#options.maxBypassMs) break
    }
    // Waiting only on quotas is not waiting on KV: that time must not make the KV drain look slow.
    this.#setKvBound(heldByKv, now)
    return false
  }

  #firstHeadPassesQuota(now: number): boolean {
    for (const userName of this.#policy.candidates(now)) {
      const head = this.#queues.get(userName)?.head
      if (head === undefined) continue
      const quota = this.#policy.checkQuota(head.request, now)
      head.quotaDenied = quota.allowed ? undefined : quota
      return quota.allowed
    }
    return false
  }

  /** Whether requests are waiting for KV right now; only such time is counted into the drain rate. */
  #setKvBound(kvBound: boolean, now: number): void {
    if (kvBound === this.#kvBound) return
    this.#kvBound = kvBound
    this.#drain.setBacklogged(kvBound, now)
  }

  /** A lower bound on the smallest need in the queue (0 if some request needs under 1 token). */
  #smallestNeedBound(): number {
    const b = this.#minNeedBucket
    return b >= 34 ? Number.POSITIVE_INFINITY : b === 0 ? 0 : 2 ** (b - 1)
  }

  #admit(item: QueueItem, backendId: string, now: number): void {
    // Tokens that had to wait for KV; a request admitted straight into an idle queue measures arrivals, not drain.
    const backlog = this.#kvBound && (this.#depth > 1 || now > item.enqueuedAtMs)
    this.#unlink(item, now)
    const policy = this.#policy
    policy.onAdmit(item.request, now)
    const reservation = this.#ledger.reserve({
      backendId,
      requestId: item.ticket.id,
      promptTokens: item.request.promptTokens,
      predictedOutputTokens: item.request.predictedOutputTokens,
    })
    if (backlog) this.#drain.noteAdmitted(item.needTokens, now)
    const waitedMs = now - item.enqueuedAtMs
    const admission = new AdmissionImpl(this, policy, item, backendId, reservation, waitedMs)
    this.emit({
      kind: 'admitted',
      id: item.ticket.id,
      user: item.ticket.user.name,
      model: item.ticket.model,
      waitedMs,
      outcome: 'admitted',
      backendId,
    })
    item.resolve(admission)
  }

  // --- deadlines ------------------------------------------------------------------------------------------

  /** The tick; a sweep already under way goes on at its own pace. */
  #onTick(): void {
    if (this.#expiryContinuation === undefined) this.#expire()
  }

  /** Answer what is past its deadline, then let the others use what the expired ones held back. */
  #expire(): void {
    if (this.#expireDue(this.#clock.now()) && this.#expiryContinuation === undefined) this.dispatch()
  }

  /**
   * Reject the requests past their deadline, at most MAX_EXPIRIES_PER_TICK at a time: past the cap the rest
   * continue on a zero-delay clock timer (after pending I/O on the system clock; inside `advance()` on a
   * manual one, so fake-clock tests stay deterministic). The dispatcher calls it too before deciding, so a
   * request is never admitted after its deadline just because the tick had not come round yet (up to
   * `deadlineTickMs` late).
   */
  #expireDue(now: number): boolean {
    let expired = 0
    for (let top = this.#heap.peek(); top !== undefined && top.deadlineAtMs <= now; top = this.#heap.peek()) {
      if (expired === MAX_EXPIRIES_PER_TICK) {
        this.#expiryContinuation = this.#clock.setTimeout(() => {
          this.#expiryContinuation = undefined
          // Not `#expire()`: every dispatch during the sweep deferred to this continuation, so it must decide
          // even when nothing is left to expire (the rest were cancelled meanwhile). dispatch() expires first.
          this.dispatch()
        }, 0)
        break
      }
      expired += 1
      // Only heads are shown to checkQuota; an item behind a quota-blocked head is held by the same quota.
      const denied = top.quotaDenied ?? top.userQueue.head?.quotaDenied
      this.#remove(top, now)
      this.#rejectExpired(top, denied, now)
    }
    return expired > 0
  }

  #rejectExpired(item: QueueItem, denied: QueueItem['quotaDenied'], now: number): void {
    const waited = formatDuration(now - item.enqueuedAtMs)
    const user = item.ticket.user
    if (this.#bestBackend() === undefined) {
      this.#rejectItem(
        item,
        'rejected_unavailable',
        errors.noBackendAvailable(['every backend is down or its metrics are stale'], OUTCOME),
        now,
      )
      return
    }
    if (denied !== undefined) {
      // Still over quota at its deadline: the quota's own reset is the honest wait.
      const waitMs = denied.retryAfterMs
      const error = errors.quotaExceeded([user.name, denied.reason, formatDuration(Math.max(1_000, waitMs))], {
        ...OUTCOME,
        headers: rejectionHeaders(errors.quotaExceeded.code, waitMs, denied.limits),
      })
      this.#rejectItem(item, 'rejected_quota', error, now, waitMs)
      return
    }
    const waitMs = this.predictWaitMs(user, item.needTokens)
    const error = errors.deadlineExceeded([waited, formatDuration(Math.max(1_000, waitMs))], {
      ...OUTCOME,
      headers: rejectionHeaders(errors.deadlineExceeded.code, waitMs, this.#policy.rateLimits(user, now)),
    })
    this.#rejectItem(item, 'rejected_deadline', error, now, waitMs)
  }

  // --- predicted wait -------------------------------------------------------------------------------------

  predictWaitMs(user: PolicyUser, needTokens: number): number {
    const now = this.#clock.now()
    const queue = this.#queues.get(user.name)
    const probe: UserQueue = queue ?? {
      name: user.name,
      weight: positiveWeight(user.weight),
      head: undefined,
      tail: undefined,
      size: 0,
      needTokens: 0,
    }
    return this.#waitMs(probe, needTokens, false, now)
  }

  /**
   * Predicted wait for `needTokens` at the back of `queue`'s user: the tokens that will be admitted before it,
   * minus the room there is now on all usable backends, divided by the measured drain rate.
   *
   * Tokens ahead are the smaller of two views: FIFO's (everything queued) and a weighted fair share's (the
   * user's own queue scaled by the active weight over the user's weight — under VTC or fair TPM the others
   * are served about that much meanwhile). The smaller one is what a fair policy would give; FIFO is never
   * faster than "everything ahead". Erring short keeps early rejection from turning away a light user stuck
   * behind a heavy one's backlog it will in fact overtake.
   */
  #waitMs(queue: UserQueue, needTokens: number, alreadyQueued: boolean, now: number): number {
    const extra = alreadyQueued ? 0 : needTokens
    const fifoAhead = this.#queuedNeedTokens + extra
    const activeWeight = this.#activeWeight + (queue.size === 0 && !alreadyQueued ? queue.weight : 0)
    const fairAhead = ((queue.needTokens + extra) * activeWeight) / queue.weight
    const ahead = Math.min(fifoAhead, fairAhead)
    // The tokens ahead can go to any usable backend, so all their room counts.
    const room = this.#bestBackend()?.totalRoomTokens ?? 0
    const shortfall = ahead - room
    if (shortfall <= 0) return 0
    let rate = this.#drain.tokensPerMs(now)
    if (rate === undefined) rate = this.#coldRate()
    if (!(rate > MIN_DRAIN_TOKENS_PER_MS)) return MAX_PREDICTED_WAIT_MS
    return Math.min(MAX_PREDICTED_WAIT_MS, shortfall / rate)
  }

  #coldRate(): number {
    let usable = 0
    for (const backend of this.#options.backends()) {
      if (backend.usable && backend.capacityTokens > 0)
        usable += backend.capacityTokens * (1 - this.#options.headroomRatio)
    }
    return usable / COLD_TURNOVER_MS
  }

  // --- reload, introspection, shutdown --------------------------------------------------------------------

  #itemsInArrivalOrder(): QueueItem[] {
    const items: QueueItem[] = []
    for (const queue of this.#queues.values()) {
      for (let item = queue.head; item !== undefined; item = item.next) items.push(item)
    }
    return items.sort((a, b) => a.seq - b.seq)
  }

  configure(tuning: Partial<AdmissionTuning>): void {
    const next = { ...this.#options, ...tuning }
    validateTuning(next)
    const tickChanged = next.deadlineTickMs !== this.#options.deadlineTickMs
    this.#options = next
    if (tickChanged && !this.#closed) {
      this.#clock.clearInterval(this.#tick)
      this.#tick = this.#clock.setInterval(() => this.#onTick(), next.deadlineTickMs)
      this.#tick.unref?.()
    }
    // More headroom or a shorter bypass may change what fits or who goes first; less room admits nothing.
    this.dispatch()
  }

  setPolicy(policy: Policy): void {
    const now = this.#clock.now()
    for (const item of this.#itemsInArrivalOrder()) {
      item.quotaDenied = undefined
      policy.onEnqueue(item.request, now)
    }
    this.#policy = policy
    this.dispatch()
  }

  queueDepth(): number {
    return this.#depth
  }

  queued(): QueuedInfo[] {
    const now = this.#clock.now()
    return this.#itemsInArrivalOrder().map((item) => ({
      id: item.ticket.id,
      user: item.ticket.user.name,
      model: item.ticket.model,
      promptTokens: item.request.promptTokens,
      predictedOutputTokens: item.request.predictedOutputTokens,
      needTokens: item.needTokens,
      waitedMs: now - item.enqueuedAtMs,
      deadlineInMs: item.deadlineAtMs - now,
      bypassedForMs: item.bypassedSinceMs === undefined ? null : now - item.bypassedSinceMs,
      quotaBlocked: item.quotaDenied !== undefined,
    }))
  }

  stats(): AdmissionStats {
    const rate = this.#drain.tokensPerMs(this.#clock.now())
    return {
      queueDepth: this.#depth,
      queuedTokens: this.#queuedNeedTokens,
      activeUsers: this.#queues.size,
      drainTokensPerSecond: rate === undefined ? undefined : rate * 1_000,
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#clock.clearInterval(this.#tick)
    if (this.#expiryContinuation !== undefined) this.#clock.clearTimeout(this.#expiryContinuation)
    this.#expiryContinuation = undefined
    const now = this.#clock.now()
    for (const item of this.#itemsInArrivalOrder()) {
      this.#remove(item, now)
      this.#rejectItem(item, 'rejected_unavailable', errors.shuttingDown([], OUTCOME), now)
    }
  }
}

/** Bit length of a need: 0 → 0, 1 → 1, 2–3 → 2, 4–7 → 3, …; needs past 2^32 share the last bucket. */
function needBucket(needTokens: number): number {
  if (needTokens < 1) return 0
  return needTokens >= 2 ** 32 ? 33 : 32 - Math.clz32(needTokens)
}

function validateTuning(tuning: AdmissionTuning): void {
  if (!(tuning.headroomRatio >= 0 && tuning.headroomRatio < 1)) throw new RangeError('headroomRatio must be in [0, 1)')
  if (!(tuning.deadlineTickMs > 0)) throw new RangeError('deadlineTickMs must be > 0')
  if (!(tuning.maxQueueLength >= 0)) throw new RangeError('maxQueueLength must be ≥ 0')
  if (!(tuning.maxBypassMs >= 0)) throw new RangeError('maxBypassMs must be ≥ 0')
}

function positiveWeight(weight: number): number {
  return weight > 0 && Number.isFinite(weight) ? weight : 1
}

export function createAdmissionController(options: AdmissionControllerOptions): AdmissionController {
  return new AdmissionControllerImpl(options)
}
