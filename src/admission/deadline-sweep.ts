import type { Clock, TimerHandle } from '../core/index.js'
import { errors, RATE_LIMIT_REQUESTS, RATE_LIMIT_TOKENS, type KvgateError } from '../errors/index.js'
import type { PolicyRequest } from '../policies/index.js'
import type { CapacityView } from './contracts.js'
import type { PolicyGuard } from './policy-guard.js'
import type { QueueItem, QueueStore } from './queue-store.js'
import { formatDuration, rejectionHeaders } from './retry-after.js'

/**
 * Options for every error admission answers with (429, 499, 503): a rejection is an outcome, not a bug, so no
 * stack trace is captured (docs/benchmarks.md, finding 4: ~25% of a mass deadline expiry was `new KvgateError`).
 */
export const OUTCOME = { captureStack: false } as const

/**
 * Deadline expiries handled in one go at most; the rest continue on a zero-delay timer, after the I/O that
 * waited (streams being relayed). 10,000 requests timing out together held the event loop ~0.1 s
 * (docs/benchmarks.md, finding 4); 1,000 at ~10 µs each is ~10 ms.
 */
export const MAX_EXPIRIES_PER_TICK = 1_000

export interface DeadlineSweepOptions {
  clock: Clock
  store: QueueStore
  tickMs: number
  /** Reject one expired item (`denied`: the quota that held it back, if one did). */
  expire(item: QueueItem, denied: QueueItem['quotaDenied'], now: number): void
  /** What the expired ones held back is free for others: decide again. */
  dispatch(): void
}

/**
 * The deadline tick: every `tickMs` it answers 429 to the requests past their deadline, earliest first, at
 * most MAX_EXPIRIES_PER_TICK at a time. Past the cap the rest continue on a zero-delay clock timer (after
 * pending I/O on the system clock; inside `advance()` on a manual one, so fake-clock tests stay
 * deterministic), and no decision is made until the sweep is done: deciding meanwhile could admit a request
 * past its deadline. The dispatcher also expires what is due before deciding, so a request is never admitted
 * after its deadline just because the tick had not come round yet (up to `tickMs` late).
 */
export class DeadlineSweep {
  readonly #options: DeadlineSweepOptions
  #tick: TimerHandle | undefined
  #continuation: TimerHandle | undefined

  constructor(options: DeadlineSweepOptions) {
    this.#options = options
    this.#tick = this.#startTick(options.tickMs)
  }

  /** A capped sweep has more to reject: nothing may be admitted until it is done. */
  get pending(): boolean {
    return this.#continuation !== undefined
  }

  /** A new tick period (reload). */
  retick(tickMs: number): void {
    if (this.#tick === undefined) return
    this.#options.clock.clearInterval(this.#tick)
    this.#tick = this.#startTick(tickMs)
  }

  /** Reject what is past its deadline now; true when something was. */
  expireDue(now: number): boolean {
    const { clock, store } = this.#options
    let expired = 0
    for (
      let top = store.earliestDeadline();
      top !== undefined && top.deadlineAtMs <= now;
      top = store.earliestDeadline()
    ) {
      if (expired === MAX_EXPIRIES_PER_TICK) {
        this.#continuation = clock.setTimeout(() => {
          this.#continuation = undefined
          // Not `#sweep()`: every dispatch during the sweep deferred to this continuation, so it must decide
          // even when nothing is left to expire (the rest were cancelled meanwhile). dispatch() expires first.
          this.#options.dispatch()
        }, 0)
        break
      }
      expired += 1
      // Only heads are shown to checkQuota; an item behind a quota-blocked head is held by the same quota.
      const denied = top.quotaDenied ?? top.userQueue.head?.quotaDenied
      this.#options.expire(top, denied, now)
    }
    return expired > 0
  }

  close(): void {
    const { clock } = this.#options
    if (this.#tick !== undefined) clock.clearInterval(this.#tick)
    if (this.#continuation !== undefined) clock.clearTimeout(this.#continuation)
    this.#tick = undefined
    this.#continuation = undefined
  }

  #startTick(tickMs: number): TimerHandle {
    const tick = this.#options.clock.setInterval(() => this.#sweep(), tickMs)
    tick.unref?.()
    return tick
  }

  /** The tick; a sweep already under way goes on at its own pace. */
  #sweep(): void {
    if (this.#continuation !== undefined) return
    // Then let the others use what the expired ones held back.
    if (this.expireDue(this.#options.clock.now()) && this.#continuation === undefined) this.#options.dispatch()
  }
}

export interface ExpiryContext {
  capacity: CapacityView
  policy: PolicyGuard
  /** The wait the expired request would see if it came again now (it has left the queue). */
  predictWaitMs(request: PolicyRequest): number
}

/**
 * Why an expired request (already out of the queue) is refused, honestly: no backend at all (503), a quota that still holds it back
 * (429 with the quota's own reset as the wait), or KV contention (429 with the predicted wait).
 */
export function expiryRejection(
  item: QueueItem,
  denied: QueueItem['quotaDenied'],
  now: number,
  context: ExpiryContext,
): { error: KvgateError; retryAfterMs?: number } {
  const waited = formatDuration(now - item.enqueuedAtMs)
  const user = item.ticket.user
  if (context.capacity.snapshot() === undefined) {
    return { error: errors.noBackendAvailable(['every backend is down or its metrics are stale'], OUTCOME) }
  }
  if (denied !== undefined) {
    // Still over quota at its deadline: the quota's own reset is the honest wait.
    const waitMs = denied.retryAfterMs
    const requestsSpent = denied.limits.remainingRequests !== undefined && denied.limits.remainingRequests <= 0
    const error = errors.quotaExceeded([user.name, denied.reason, formatDuration(Math.max(1_000, waitMs))], {
      ...OUTCOME,
      type: requestsSpent ? RATE_LIMIT_REQUESTS : RATE_LIMIT_TOKENS,
      headers: rejectionHeaders(errors.quotaExceeded.code, waitMs, denied.limits),
    })
    return { error, retryAfterMs: waitMs }
  }
  const waitMs = context.predictWaitMs(item.request)
  const error = errors.deadlineExceeded([waited, formatDuration(Math.max(1_000, waitMs))], {
    ...OUTCOME,
    headers: rejectionHeaders(errors.deadlineExceeded.code, waitMs, context.policy.rateLimits(user, now)),
  })
  return { error, retryAfterMs: waitMs }
}
