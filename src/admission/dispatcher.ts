import type { Clock } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { CapacitySnapshot, CapacityView, ItemEndings } from './contracts.js'
import { OUTCOME } from './deadline-sweep.js'
import type { PolicyGuard } from './policy-guard.js'
import type { QueueItem, QueueStore } from './queue-store.js'
import type { WaitPrediction } from './wait-prediction.js'

/** Users tried per decision at most: bounds a decision's cost when many heads are quota-blocked or too big. */
export const MAX_CANDIDATES_PER_DECISION = 32

export interface DispatcherOptions {
  clock: Clock
  store: QueueStore
  capacity: CapacityView
  prediction: WaitPrediction
  /** The policy in force now (a reload swaps it). */
  policy(): PolicyGuard
  maxBypassMs(): number
  endings: ItemEndings<QueueItem>
  /** Whether a head waits on a shared ledger's confirmation or refusal, and as what (none: try it). */
  waiting?(item: QueueItem, now: number): 'quota' | 'held-by-kv' | undefined
  /** Expire what is due before deciding; `pending` while a capped sweep still has more to reject. */
  sweep: { expireDue(now: number): boolean; readonly pending: boolean }
  closed(): boolean
  /** After every dispatch (the wait prediction settles its shadows). */
  afterDispatch?(now: number): void
}

/**
 * The decision loop: admit the first head, in the policy's order, that passes its quota and fits, and again
 * while something is admitted.
 *
 * Head-of-line rule (work-conserving with bounded bypass): a head that passes its quota but does not fit is
 * *bypassed*: later candidates that fit are admitted, so KV does not sit idle while small requests wait. The
 * first time a head is bypassed its clock starts; once it has been bypassed for `maxBypassMs` the dispatcher
 * stops at it and admits nothing behind it until it fits, so a large request is delayed by small ones at most
 * `maxBypassMs` (0 = strict head-of-line, as in the VTC artifact). A head that cannot fit on any usable
 * backend even when empty never blocks others.
 *
 * Cost per decision: at most `MAX_CANDIDATES_PER_DECISION` users are tried (so policies should yield
 * quota-blocked users after ready ones, as the built-in ones do), and the scan is skipped altogether when the
 * room is below the smallest queued need (an O(1) bound kept by the store).
 */
export class Dispatcher {
  readonly #options: DispatcherOptions
  #dispatching = false
  #dispatchAgain = false
  #scheduled = false

  constructor(options: DispatcherOptions) {
    this.#options = options
  }

  /**
   * Decide after the current call stack (a microtask): used by `finish()`, so the finishing request's own
   * ending (its log line, its metrics) is complete before anything else is admitted, and several finishes in
   * one turn cost one pass. A microtask rather than a clock timer: it runs before any I/O, so room freed by a
   * finish is handed out at once, and it needs no `advance()` under a manual clock.
   */
  schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    queueMicrotask(() => {
      this.#scheduled = false
      this.dispatch()
    })
  }

  dispatch(): void {
    // Re-entrancy: an admission's event handler may ring again; run once more after.
    if (this.#dispatching) {
      this.#dispatchAgain = true
      return
    }
    const { sweep, clock } = this.#options
    // A capped sweep is still rejecting expired requests; its continuation dispatches when it is done.
    if (sweep.pending) return
    this.#dispatching = true
    try {
      if (!this.#options.closed()) sweep.expireDue(clock.now())
      if (sweep.pending) return
      do {
        this.#dispatchAgain = false
        while (this.#decide()) {
          // Each admission changes the room and may change the policy's order: decide again from the top.
        }
      } while (this.#dispatchAgain)
    } finally {
      this.#dispatching = false
    }
    this.#options.afterDispatch?.(clock.now())
  }

  /** One decision; true when it admitted (or answered) a head, so the next decision may differ. */
  #decide(): boolean {
    const { store, prediction, clock } = this.#options
    if (this.#options.closed() || store.depth === 0) return false
    const now = clock.now()
    const snapshot = this.#options.capacity.snapshot()
    if (snapshot === undefined) {
      prediction.setKvBound(false, now) // an outage, not KV contention: it says nothing about the drain rate
      return false
    }
    if (snapshot.maxRoomTokens < store.smallestNeedBound()) {
      // Nothing queued can fit: skip the scan. Whether requests wait on KV or only on quotas is read off the
      // first candidate (policies put quota-blocked users behind ready ones), at the cost of one look.
      prediction.setKvBound(this.#firstHeadPassesQuota(now), now)
      return false
    }
    const policy = this.#options.policy()
    let tried = 0
    let heldByKv = false
    try {
      for (const userName of policy.policy.candidates(now)) {
        if (++tried > MAX_CANDIDATES_PER_DECISION) break
        const head = store.head(userName)
        if (head === undefined) continue
        const verdict = this.#tryHead(head, snapshot, policy, now)
        if (verdict === 'decided') return true
        if (verdict === 'held-by-kv') heldByKv = true
        else if (verdict === 'stop') {
          heldByKv = true
          break
        }
      }
    } catch (err) {
      // The policy's order broke mid-walk: admit nothing this time. The queue still drains by deadline, and
      // the next finish or poll asks again.
      policy.report('candidates', err)
    }
    // Waiting only on quotas is not waiting on KV: that time must not make the KV drain look slow.
    prediction.setKvBound(heldByKv, now)
    return false
  }

  #tryHead(
    head: QueueItem,
    snapshot: CapacitySnapshot,
    policy: PolicyGuard,
    now: number,
  ): 'decided' | 'quota' | 'held-by-kv' | 'stop' {
    const waiting = this.#options.waiting?.(head, now)
    if (waiting !== undefined) return waiting
    const quota = policy.checkQuota(head.request, now)
    if (quota === undefined) {
      // The policy cannot say whether this head may go: answer it rather than let it block its user's queue.
      this.#options.endings.reject(head, errors.internal(['the fairness policy failed'], OUTCOME), now)
      return 'decided'
    }
    if (!quota.allowed) {
      head.quotaDenied = quota
      return 'quota'
    }
    head.quotaDenied = undefined
    const placement = snapshot.place(head.needTokens, head.ticket)
    if (placement !== undefined) {
      this.#options.endings.admit(head, placement, now)
      return 'decided'
    }
    // Too big for any usable backend of its pool even when empty (a large backend is down): it must not hold
    // others.
    const maxUsable =
      snapshot.limitsFor === undefined ? snapshot.maxUsableTokens : snapshot.limitsFor(head.ticket)?.maxUsableTokens
    if (maxUsable === undefined || head.needTokens > maxUsable) return 'held-by-kv'
    head.bypassedSinceMs ??= now
    return now - head.bypassedSinceMs >= this.#options.maxBypassMs() ? 'stop' : 'held-by-kv'
  }

  #firstHeadPassesQuota(now: number): boolean {
    const policy = this.#options.policy()
    try {
      for (const userName of policy.policy.candidates(now)) {
        const head = this.#options.store.head(userName)
        if (head === undefined) continue
        const quota = policy.checkQuota(head.request, now)
        head.quotaDenied = quota === undefined || quota.allowed ? undefined : quota
        return quota?.allowed === true
      }
    } catch (err) {
      policy.report('candidates', err)
    }
    return false
  }
}
