import type { Clock } from '../core/index.js'

export const USAGE_BUCKET_MS = 60_000 // one bucket per wall-clock minute
export const USAGE_RETENTION_MS = 24 * 60 * 60_000 // a day of minutes, then the oldest is dropped
export const USAGE_USERS_PER_BUCKET = 200 // distinct users one minute keeps; later ones fold into OTHER_USERS
/** Where users past the per-minute bound are counted; not a valid user name, so never a real user's row. */
export const OTHER_USERS = '(others)'

/** One request's contribution, when it is reported. */
export interface UsageRecord {
  readonly user: string
  readonly status: number
  /** It reached a backend (admitted); only then do its tokens count. */
  readonly admitted: boolean
  readonly completed: boolean
  readonly inputTokens: number
  readonly outputTokens: number
}

export interface UserUsage {
  readonly user: string
  readonly requests: number
  readonly admitted: number
  readonly completed: number
  /** Answered 429 (quota, deadline, queue full, predicted wait). */
  readonly rateLimited: number
  /** Answered 503 (no usable backend, shutting down). */
  readonly unavailable: number
  readonly inputTokens: number
  readonly outputTokens: number
}

export interface UsageReport {
  /** Start of the first bucket counted (the `since` asked for, rounded down to the minute), epoch ms. */
  readonly fromMs: number
  readonly toMs: number
  readonly totals: Omit<UserUsage, 'user'> & { readonly users: number }
  /** Most tokens first, at most `limit`. */
  readonly users: readonly UserUsage[]
}

/** Per-user figures over a period: `/debug/usage?since=` reads it. */
export interface UsageTally {
  record(entry: UsageRecord): void
  report(sinceMs: number, limit: number): UsageReport
}

type Counts = { -readonly [K in keyof Omit<UserUsage, 'user'>]: number }

const zero = (): Counts => ({
  requests: 0,
  admitted: 0,
  completed: 0,
  rateLimited: 0,
  unavailable: 0,
  inputTokens: 0,
  outputTokens: 0,
})

const add = (into: Counts, from: Counts): void => {
  for (const key of Object.keys(into) as (keyof Counts)[]) into[key] += from[key]
}

/**
 * Per-user usage in wall-clock minutes, kept for a day: what an operator asks after the fact ("who used the
 * gateway this last hour, and who was throttled?"), with every user's own name — unlike the metrics, whose
 * `user` label is bounded by `telemetry.maxUserLabels`. Memory is bounded too: at most
 * `USAGE_USERS_PER_BUCKET` rows a minute, the rest folded into one `(others)` row, and 1,440 minutes.
 */
export function createUsageTally(clock: Clock): UsageTally {
  // Oldest first; each bucket's start is a multiple of the bucket length.
  const buckets: { startMs: number; users: Map<string, Counts> }[] = []

  const bucketAt = (nowMs: number): Map<string, Counts> => {
    const startMs = nowMs - (nowMs % USAGE_BUCKET_MS)
    const last = buckets.at(-1)
    // The same minute, or a wall clock that stepped back: keep counting into the newest bucket.
    if (last !== undefined && last.startMs >= startMs) return last.users
    while (buckets.length > 0 && (buckets[0]?.startMs ?? 0) <= startMs - USAGE_RETENTION_MS) buckets.shift()
    const users = new Map<string, Counts>()
    buckets.push({ startMs, users })
    return users
  }

  return {
    record(entry) {
      const users = bucketAt(clock.wallNow())
      const name = users.has(entry.user) || users.size < USAGE_USERS_PER_BUCKET ? entry.user : OTHER_USERS
      let counts = users.get(name)
      if (counts === undefined) {
        counts = zero()
        users.set(name, counts)
      }
      counts.requests++
      if (entry.admitted) {
        counts.admitted++
        counts.inputTokens += entry.inputTokens
        counts.outputTokens += entry.outputTokens
      }
      if (entry.completed) counts.completed++
      if (entry.status === 429) counts.rateLimited++
      if (entry.status === 503) counts.unavailable++
    },
    report(sinceMs, limit) {
      const toMs = clock.wallNow()
      const fromMs = Math.max(sinceMs - (sinceMs % USAGE_BUCKET_MS), toMs - USAGE_RETENTION_MS)
      const byUser = new Map<string, Counts>()
      for (const bucket of buckets) {
        if (bucket.startMs + USAGE_BUCKET_MS <= fromMs) continue
        for (const [user, counts] of bucket.users) {
          let sum = byUser.get(user)
          if (sum === undefined) {
            sum = zero()
            byUser.set(user, sum)
          }
          add(sum, counts)
        }
      }
      const totals = zero()
      for (const counts of byUser.values()) add(totals, counts)
      const users = [...byUser]
        .map(([user, counts]) => ({ user, ...counts }))
        .sort(
          (a, b) =>
            b.inputTokens + b.outputTokens - (a.inputTokens + a.outputTokens) ||
            b.requests - a.requests ||
            (a.user < b.user ? -1 : 1),
        )
      return { fromMs, toMs, totals: { ...totals, users: users.length }, users: users.slice(0, limit) }
    },
  }
}
