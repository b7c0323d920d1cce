import type { RateLimitState } from '../policies/index.js'

/**
 * The headers of an admission 429 (the wait they carry comes from wait-prediction.ts).
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

/** OpenAI's `x-ratelimit-*` headers for a user's quota state: on every response of a user with a quota. */
export function rateLimitHeaders(limits: RateLimitState): Record<string, string> {
  const headers: Record<string, string> = {}
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
  return { ...headers, ...rateLimitHeaders(limits) }
}
