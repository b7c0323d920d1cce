import type { RateLimitState } from '../policies/index.js'

/**
 * The headers of an admission 429 and the drain-rate model `retry-after` is computed from.
 *
 * The OpenAI SDKs wait `retry-after-ms`, else `retry-after`, but ignore values above 60 s (and fall back to
 * 0.5–8 s exponential backoff), and `x-should-retry: false` stops them retrying at all. So the wait sent is
 * the predicted wait clamped to 1..60 s, and a predicted wait beyond 60 s says `x-should-retry: false`:
 * retrying within what the SDK would honour cannot help.
 */

/** Bounds of `retry-after` (ms): at least a second, at most what the OpenAI SDKs honour. */
export const MIN_RETRY_AFTER_MS = 1_000 // 1 second
export const MAX_RETRY_AFTER_MS = 60_000 // 60 seconds

/** Go-style duration as OpenAI's `x-ratelimit-reset-*` headers and messages use it: `20ms`, `9.8s`, `6m0s`, `1h2m3s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0s'
  if (Math.ceil(ms) < 1_000) return `${Math.ceil(ms)}ms`
  const totalSeconds = Math.round(ms / 100) / 10 // one decimal, like "9.8s"
  const hours = Math.floor(totalSeconds / 3600)
  const minutes = Math.floor((totalSeconds - hours * 3600) / 60)
  const seconds = Math.round((totalSeconds - hours * 3600 - minutes * 60) * 10) / 10
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`
  if (minutes > 0) return `${minutes}m${seconds}s`
  return `${seconds}s`
}

/** The headers for a rejection: reason, retry-after (clamped), x-should-retry, and the policy's x-ratelimit-*. */
export function rejectionHeaders(reason: string, retryAfterMs: number, limits: RateLimitState): Record<string, string> {
  const clampedMs = Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, Math.ceil(retryAfterMs)))
  const headers: Record<string, string> = {
    'retry-after': String(Math.ceil(clampedMs / 1_000)),
    'retry-after-ms': String(clampedMs),
    'x-kvgate-reject-reason': reason,
  }
  // A wait beyond what the SDKs honour: tell them not to hammer us with backoff retries that cannot succeed.
  if (!(retryAfterMs <= MAX_RETRY_AFTER_MS)) headers['x-should-retry'] = 'false'
  if (limits.limitTokens !== undefined) headers['x-ratelimit-limit-tokens'] = String(limits.limitTokens)
  if (limits.remainingTokens !== undefined)
    headers['x-ratelimit-remaining-tokens'] = String(Math.max(0, Math.floor(limits.remainingTokens)))
  if (limits.resetTokensMs !== undefined) headers['x-ratelimit-reset-tokens'] = formatDuration(limits.resetTokensMs)
  if (limits.limitRequests !== undefined) headers['x-ratelimit-limit-requests'] = String(limits.limitRequests)
  if (limits.remainingRequests !== undefined)
    headers['x-ratelimit-remaining-requests'] = String(Math.max(0, Math.floor(limits.remainingRequests)))
  if (limits.resetRequestsMs !== undefined)
    headers['x-ratelimit-reset-requests'] = formatDuration(limits.resetRequestsMs)
  return headers
}

/** Memory of the drain rate, in KV-bound time: the last ~10 s of waiting weigh most. */
const DRAIN_TIME_CONSTANT_MS = 10_000 // 10 seconds
/** KV-bound time to observe before the rate counts as measured. */
const DRAIN_MIN_OBSERVED_MS = 1_000 // 1 second

/**
 * How fast the queue drains: tokens of need admitted per millisecond *while requests were waiting for KV*.
 *
 * Only that time counts (the controller says when it starts and stops). When the queue is empty, admissions
 * are limited by arrivals; while requests wait only on a quota, or no backend is usable, KV is not what holds
 * them. Counting such time would make the gateway look slow and early-reject the next burst (the seed
 * prototype's "second run rejected almost entirely"). An idle period leaves the estimate where the last
 * backlog left it.
 *
 * The estimate is a ratio of exponentially decayed sums, tokens over time, rather than an average of
 * per-second samples: admissions come in bursts (a batch of requests ends, a batch starts), and averaging
 * fixed windows makes the figure depend on where the bursts fall and starts biased towards the first window.
 */
export class DrainRate {
  #tokens = 0
  #timeMs = 0
  #observedMs = 0
  #lastMs: number
  #backlogged = false

  constructor(nowMs: number) {
    this.#lastMs = nowMs
  }

  #advance(nowMs: number): void {
    const dt = Math.max(0, nowMs - this.#lastMs)
    this.#lastMs = nowMs
    if (!this.#backlogged || dt === 0) return
    const decay = Math.exp(-dt / DRAIN_TIME_CONSTANT_MS)
    this.#tokens *= decay
    // ∫ e^(−(t_now − t)/τ) dt over the new stretch, added to the decayed old time.
    this.#timeMs = this.#timeMs * decay + DRAIN_TIME_CONSTANT_MS * (1 - decay)
    this.#observedMs += dt
  }

  setBacklogged(backlogged: boolean, nowMs: number): void {
    this.#advance(nowMs)
    this.#backlogged = backlogged
  }

  /** Tokens of need admitted while requests waited for KV. */
  noteAdmitted(tokens: number, nowMs: number): void {
    this.#advance(nowMs)
    this.#tokens += tokens
  }

  /** The measured rate, or undefined until a second of KV-bound waiting has been seen. */
  tokensPerMs(nowMs: number): number | undefined {
    this.#advance(nowMs)
    return this.#observedMs < DRAIN_MIN_OBSERVED_MS ? undefined : this.#tokens / this.#timeMs
  }
}
