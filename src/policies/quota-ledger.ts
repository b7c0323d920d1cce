import type { HeadOrder } from './head-order.js'
import type { Policy, PolicyRequest, PolicyUser, QuotaDecision, RateLimitState } from './policy.js'
import { UsageWindow, type Charge } from './usage-window.js'

/** The limits in force for one user; undefined means unlimited in that dimension. */
export interface QuotaLimits {
  readonly tokensPerMinute: number | undefined
  readonly requestsPerMinute: number | undefined
}

interface Admitted {
  readonly user: string
  readonly charge: Charge
  readonly predicted: number
  /** Completion tokens counted against the window so far: the prediction, plus any overrun streamed. */
  counted: number
  streamed: number
}

interface BlockedDecision {
  readonly user: string
  readonly requestId: string
  readonly version: number
  readonly untilMs: number
  readonly reason: string
  /** The limits the decision was made under (dynamic quotas change between calls). */
  readonly limits: QuotaLimits
}

/**
 * Per-user token and request accounting over a sliding minute, shared by `tpm` and `dynamic-tpm`.
 *
 * A request is charged prompt + predicted completion when it is admitted, so a burst of concurrent
 * admissions sees each other's reservations and cannot overshoot the quota (limiters that count only
 * when a response ends let a whole burst through). Tokens streamed beyond the prediction are charged as
 * they arrive; at the end, a prediction that was too high is refunded from the admission's charge.
 */
export class QuotaLedger {
  readonly #windows = new Map<string, UsageWindow>()
  readonly #admitted = new Map<string, Admitted>()
  readonly #blocked = new Map<string, BlockedDecision>()
  /** Admitted-but-unfinished requests per user: their window must outlive a quiet minute to settle. */
  readonly #inFlight = new Map<string, number>()

  window(user: string, nowMs: number): UsageWindow {
    let window = this.#windows.get(user)
    if (window === undefined) {
      window = new UsageWindow()
      this.#windows.set(user, window)
    }
    window.expire(nowMs)
    return window
  }

  /** Tokens charged in the last minute, without creating state for an unknown user. */
  usedTokens(user: string, nowMs: number): number {
    const window = this.#windows.get(user)
    if (window === undefined) return 0
    window.expire(nowMs)
    return window.tokens
  }

  /**
   * Drop the windows of users with nothing charged in the last minute and nothing in flight, so state is
   * bounded by recently active users however many names come and go. O(users); call it now and then.
   */
  prune(nowMs: number): void {
    for (const [user, window] of this.#windows) {
      window.expire(nowMs)
      if (window.empty && !this.#hasInFlight(user)) {
        this.#windows.delete(user)
        this.#blocked.delete(user)
      }
    }
  }

  check(request: PolicyRequest, nowMs: number, limits: QuotaLimits): QuotaDecision {
    const { tokensPerMinute, requestsPerMinute } = limits
    if (tokensPerMinute === undefined && requestsPerMinute === undefined) return { allowed: true }
    const user = request.user.name
    const window = this.window(user, nowMs)
    const cached = this.#blocked.get(user)
    if (
      cached &&
      cached.requestId === request.id &&
      cached.version === window.version &&
      cached.limits.tokensPerMinute === tokensPerMinute &&
      cached.limits.requestsPerMinute === requestsPerMinute &&
      nowMs < cached.untilMs
    ) {
      return this.#deny(cached, nowMs, limits)
    }
    const need = request.promptTokens + request.predictedOutputTokens
    const tokenWaitMs = tokensPerMinute === undefined ? 0 : window.msUntilTokensFit(nowMs, need, tokensPerMinute)
    const requestWaitMs = requestsPerMinute === undefined ? 0 : window.msUntilRequestFits(nowMs, requestsPerMinute)
    if (tokenWaitMs === 0 && requestWaitMs === 0) {
      this.#blocked.delete(user)
      return { allowed: true }
    }
    const reason =
      tokenWaitMs >= requestWaitMs
        ? `tokens per minute (limit ${Math.round(tokensPerMinute ?? 0)}, used ${Math.round(window.tokens)}, requested ${need})`
        : `requests per minute (limit ${requestsPerMinute ?? 0}, used ${window.requests})`
    const blocked: BlockedDecision = {
      user,
      requestId: request.id,
      version: window.version,
      untilMs: nowMs + Math.max(tokenWaitMs, requestWaitMs),
      reason,
      limits,
    }
    this.#blocked.set(user, blocked)
    return this.#deny(blocked, nowMs, limits)
  }

  /**
   * How long until `tokens` more tokens and `requests` more requests fit in `user`'s quota, side-effect free
   * (no decision cached, nothing parked): the quota part of a wait estimate. Refunds of the user's running
   * over-predictions may make it shorter.
   */
  waitFor(
    user: string,
    tokens: number,
    requests: number,
    nowMs: number,
    limits: QuotaLimits,
  ): { waitMs: number; reason?: string } {
    const { tokensPerMinute, requestsPerMinute } = limits
    if (tokensPerMinute === undefined && requestsPerMinute === undefined) return { waitMs: 0 }
    const window = this.#windows.get(user) ?? new UsageWindow()
    window.expire(nowMs)
    const tokenWaitMs = tokensPerMinute === undefined ? 0 : window.msUntilTokensFit(nowMs, tokens, tokensPerMinute)
    const requestWaitMs =
      requestsPerMinute === undefined ? 0 : window.msUntilRequestFits(nowMs, requestsPerMinute, requests)
    const waitMs = Math.max(tokenWaitMs, requestWaitMs)
    if (waitMs === 0) return { waitMs }
    const reason =
      tokenWaitMs >= requestWaitMs
        ? `tokens per minute (limit ${Math.round(tokensPerMinute ?? 0)}, used ${Math.round(window.tokens)}, requested ${tokens})`
        : `requests per minute (limit ${requestsPerMinute ?? 0}, used ${window.requests})`
    return { waitMs, reason }
  }

  rateLimits(user: string, nowMs: number, limits: QuotaLimits): RateLimitState {
    const window = this.#windows.get(user)
    window?.expire(nowMs)
    const state: { -readonly [K in keyof RateLimitState]: RateLimitState[K] } = {}
    if (limits.tokensPerMinute !== undefined) {
      state.limitTokens = Math.round(limits.tokensPerMinute)
      state.remainingTokens = Math.max(0, Math.floor(limits.tokensPerMinute - (window?.tokens ?? 0)))
      state.resetTokensMs = window?.msUntilEmpty(nowMs) ?? 0
    }
    if (limits.requestsPerMinute !== undefined) {
      state.limitRequests = limits.requestsPerMinute
      state.remainingRequests = Math.max(0, limits.requestsPerMinute - (window?.requests ?? 0))
      state.resetRequestsMs = window?.msUntilOldestRequestExpires(nowMs) ?? 0
    }
    return state
  }

  admit(request: PolicyRequest, nowMs: number): void {
    if (this.#admitted.has(request.id)) return
    const user = request.user.name
    const window = this.window(user, nowMs)
    const predicted = Math.max(0, request.predictedOutputTokens)
    const charge = window.charge(nowMs, request.promptTokens + predicted, 1)
    this.#admitted.set(request.id, { user, charge, predicted, counted: predicted, streamed: 0 })
    this.#inFlight.set(user, (this.#inFlight.get(user) ?? 0) + 1)
    this.#blocked.delete(user)
  }

  tokens(request: PolicyRequest, tokens: number, nowMs: number): void {
    const admitted = this.#admitted.get(request.id)
    if (admitted === undefined || tokens <= 0) return
    admitted.streamed += tokens
    this.#countUpTo(admitted, admitted.streamed, nowMs)
  }

  finish(request: PolicyRequest, completionTokens: number, nowMs: number): void {
    const admitted = this.#admitted.get(request.id)
    if (admitted === undefined) return
    this.#admitted.delete(request.id)
    const left = (this.#inFlight.get(admitted.user) ?? 1) - 1
    if (left > 0) this.#inFlight.set(admitted.user, left)
    else this.#inFlight.delete(admitted.user)
    const actual = Math.max(completionTokens, 0)
    // Tokens the stream did not report (a final usage chunk) are charged now; an over-prediction is refunded.
    this.#countUpTo(admitted, actual, nowMs)
    if (actual < admitted.counted) {
      this.window(admitted.user, nowMs).refund(admitted.charge, admitted.counted - actual)
      admitted.counted = actual
    }
  }

  #countUpTo(admitted: Admitted, completion: number, nowMs: number): void {
    if (completion <= admitted.counted) return
    this.window(admitted.user, nowMs).charge(nowMs, completion - admitted.counted, 0)
    admitted.counted = completion
  }

  #hasInFlight(user: string): boolean {
    return (this.#inFlight.get(user) ?? 0) > 0
  }

  #deny(blocked: BlockedDecision, nowMs: number, limits: QuotaLimits): QuotaDecision {
    return {
      allowed: false,
      retryAfterMs: Math.max(1, blocked.untilMs - nowMs),
      reason: blocked.reason,
      limits: this.rateLimits(blocked.user, nowMs, limits),
    }
  }
}

/**
 * The quota hooks of a policy that keeps a `QuotaLedger` and a `HeadOrder` (tpm, dynamic-tpm): they differ
 * only in the limits in force for a user, `limitsOf`.
 */
export function quotaHooks(
  ledger: QuotaLedger,
  order: HeadOrder,
  limitsOf: (user: PolicyUser) => QuotaLimits,
): Pick<Policy, 'checkQuota' | 'onTokens' | 'onFinish' | 'rateLimits'> {
  return {
    checkQuota(request, nowMs) {
      const decision = ledger.check(request, nowMs, limitsOf(request.user))
      if (!decision.allowed) order.park(request.user.name, nowMs + decision.retryAfterMs)
      return decision
    },
    onTokens(request, tokens, nowMs) {
      ledger.tokens(request, tokens, nowMs)
    },
    onFinish(request, completionTokens, nowMs) {
      ledger.finish(request, completionTokens, nowMs)
      // A refund of an over-prediction may let a parked head through before its computed time.
      order.unpark(request.user.name)
    },
    rateLimits: (user, nowMs) => ledger.rateLimits(user.name, nowMs, limitsOf(user)),
  }
}

/**
 * `waitAhead` for a quota policy: the KV part from `kvAhead` (the policy's own order), the quota part from the
 * ledger, counting the user's earlier queued requests against its quota first (they go before it).
 */
export function quotaWaitAhead(
  ledger: QuotaLedger,
  order: HeadOrder,
  limitsOf: (user: PolicyUser) => QuotaLimits,
  kvAhead: (request: PolicyRequest, ownNeedAhead: number, nowMs: number) => number,
): Policy['waitAhead'] {
  return (request, nowMs) => {
    const own = order.backlog.ownAhead(request)
    const need = request.promptTokens + request.predictedOutputTokens
    const limits = limitsOf(request.user)
    const quota = ledger.waitFor(request.user.name, own.need + need, own.count + 1, nowMs, limits)
    return {
      tokensAhead: kvAhead(request, own.need, nowMs),
      quotaWaitMs: quota.waitMs,
      ...(quota.reason === undefined
        ? {}
        : { quota: { reason: quota.reason, limits: ledger.rateLimits(request.user.name, nowMs, limits) } }),
    }
  }
}
