/**
 * The fairness policy contract: which waiting request goes next, and whether a user's quota lets it go.
 *
 * The admission queue (src/admission) owns one FIFO queue per user and the KV check; a policy never sees
 * KV. The dispatcher asks `candidates()` for users in the policy's order, takes the head of each user's
 * queue, asks `checkQuota()`, and admits the first head that also fits in KV. Every implementation is
 * registered by name in `./index.ts`, picked by `policy.name` in YAML, and runs the shared contract suite
 * in `test/policies/policy-contract.test.ts`.
 *
 * All times are the injected clock's milliseconds; a policy keeps no timers of its own (`onTick` is called).
 */
export interface PolicyUser {
  /** Bounded, configured name (or `anonymous` / the identity's fallback); used as a metric label. */
  readonly name: string
  /** Share relative to other users; 1 by default. */
  readonly weight: number
  /** Per-user quotas from config; a policy that does not use quotas ignores them. */
  readonly tokensPerMinute?: number
  readonly requestsPerMinute?: number
}

export interface PolicyRequest {
  readonly id: string
  readonly user: PolicyUser
  readonly promptTokens: number
  /** The predictor's output length, already capped by the request's max tokens. */
  readonly predictedOutputTokens: number
  readonly enqueuedAtMs: number
}

/** OpenAI's `x-ratelimit-*` figures for one user, as a quota policy sees them now. */
export interface RateLimitState {
  readonly limitTokens?: number
  readonly remainingTokens?: number
  readonly resetTokensMs?: number
  readonly limitRequests?: number
  readonly remainingRequests?: number
  readonly resetRequestsMs?: number
}

export type QuotaDecision =
  | { readonly allowed: true }
  | {
      readonly allowed: false
      /** When the head could pass the quota at the earliest, for `retry-after`. */
      readonly retryAfterMs: number
      /** Which quota holds it back, for the 429 message. */
      readonly reason: string
      readonly limits: RateLimitState
    }

/**
 * How long a request waits in a policy's own order: what the admission queue's predicted wait (retry-after,
 * early rejection) is made of. The KV part is the need the policy will admit before the request; the quota
 * part is how long the request's own quota holds it back, whatever the KV.
 */
export interface WaitAhead {
  /**
   * Tokens of need (prompt + predicted output) the policy admits before this request, its own user's earlier
   * requests included and the request itself not: new arrivals that would overtake it are not counted.
   */
  readonly tokensAhead: number
  /** Its own quota cannot let it go for at least this long (0: quotas let it go now). */
  readonly quotaWaitMs: number
  /** When `quotaWaitMs` > 0: which quota, and the user's `x-ratelimit-*` figures, for a 429 at arrival. */
  readonly quota?: { readonly reason: string; readonly limits: RateLimitState }
}

/** What the gateway measured since the last tick, for policies that adapt (dynamic-tpm). */
export interface ServiceSample {
  /** Tokens (prompt + completion) finished across all backends per minute, smoothed by the caller or not. */
  readonly servedTokensPerMinute: number
}

/** Per-user state for metrics and the debug endpoint. */
export interface PolicyUserState {
  readonly user: string
  readonly weight: number
  /** VTC's virtual counter. */
  readonly counter?: number
  /** The tokens-per-minute quota in force now (static or dynamic). */
  readonly quotaTokensPerMinute?: number
  readonly usedTokensLastMinute?: number
}

export interface Policy {
  readonly name: string
  /** A request joined its user's queue (the user may have been idle: VTC lifts it here). */
  onEnqueue(request: PolicyRequest, nowMs: number): void
  /** A request left the queue without being admitted (deadline, client gone, shutdown). */
  onRemove(request: PolicyRequest, nowMs: number): void
  /**
   * Users with waiting requests, in the order their heads should be tried. Lazy: the dispatcher stops
   * early, so an implementation keeps its order in a heap or list rather than sorting on each call.
   */
  candidates(nowMs: number): Iterable<string>
  /** May this request (the head of its user's queue) be admitted now as far as quotas go? */
  checkQuota(request: PolicyRequest, nowMs: number): QuotaDecision
  /** The request was admitted: it left the queue and was charged (prompt + predicted output). */
  onAdmit(request: PolicyRequest, nowMs: number): void
  /** `tokens` more completion tokens streamed for an admitted request. */
  onTokens(request: PolicyRequest, tokens: number, nowMs: number): void
  /** An admitted request ended; `completionTokens` is what it actually produced (settles the prediction). */
  onFinish(request: PolicyRequest, completionTokens: number, nowMs: number): void
  /** Called on every metrics poll. */
  onTick(nowMs: number, sample: ServiceSample): void
  /**
   * The wait of `request` in this policy's order, for a request that is the newest of its user's queue (just
   * enqueued) or not queued at all (as if it joined now). Side-effect free; may cost O(backlogged users).
   */
  waitAhead(request: PolicyRequest, nowMs: number): WaitAhead
  /** Current x-ratelimit state of a user (empty for policies without quotas). */
  rateLimits(user: PolicyUser, nowMs: number): RateLimitState
  userStates(nowMs: number): PolicyUserState[]
}

/** Options every policy factory receives; each implementation reads its own section of `options`. */
export interface PolicyContext {
  /** Users known from config (for weights and quotas); others arrive with the default user's settings. */
  readonly users: readonly PolicyUser[]
  /** The implementation's own options from YAML (`policy.options`), already validated by its schema. */
  readonly options: Readonly<Record<string, unknown>>
}

export type PolicyFactory = (context: PolicyContext) => Policy
