import type { Clock } from '../core/index.js'
import { errors } from '../errors/index.js'
import { USAGE_BUCKET_MS, type UsageTally } from '../telemetry/index.js'
import type { AdminRoutes } from './admin-server.js'

export const DEBUG_QUEUE_USERS_DEFAULT = 20 // users per /debug/queue answer, most queued first
export const DEBUG_QUEUE_ITEMS_DEFAULT = 10 // requests shown per user, oldest first
export const DEBUG_QUEUE_MAX = 1_000 // the most a client may ask for, of either

/** A bounded count from the query (`?users=5`); a bad or missing value is the default, not an error. */
export function boundedInt(value: unknown, fallback: number, max: number): number {
  const n = typeof value === 'string' && /^[0-9]{1,9}$/.test(value) ? Number(value) : fallback
  return Math.min(max, Math.max(1, n))
}

/**
 * `GET /debug/queue?users=&items=&user=`: the admission queue as an operator reads it live — per user (the
 * most queued first, at most `users`), each with its oldest `items` requests, how long each has waited, what
 * it needs and why it still waits (`WAIT_REASONS` in src/admission), with totals that count everything, shown
 * or not. Bounded both ways, so a queue of 10,000 costs one page, not a megabyte of JSON.
 */
export const debugQueueRoute: AdminRoutes = (admin, context) => {
  admin.get('/debug/queue', async (request) => {
    const q = (request.query ?? {}) as Record<string, unknown>
    const user = typeof q['user'] === 'string' && q['user'] !== '' ? q['user'] : undefined
    const view = context.admission.queueView({
      maxUsers: boundedInt(q['users'], DEBUG_QUEUE_USERS_DEFAULT, DEBUG_QUEUE_MAX),
      maxItemsPerUser: boundedInt(q['items'], DEBUG_QUEUE_ITEMS_DEFAULT, DEBUG_QUEUE_MAX),
      user,
    })
    return {
      totals: {
        queued: view.queued,
        queuedNeedTokens: view.queuedNeedTokens,
        users: view.users,
        maxRoomTokens: view.maxRoomTokens,
        forwarding: context.inFlight.size,
      },
      users: view.shownUsers,
    }
  })
}

export const DEBUG_USAGE_SINCE_DEFAULT_MS = 60 * 60_000 // /debug/usage without ?since=: the last hour
export const DEBUG_USAGE_USERS_DEFAULT = 100 // users per /debug/usage answer, most tokens first

const DURATION = /^([0-9]{1,9})(s|m|h|d)$/
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * `since` as an operator writes it: a duration back from now (`90s`, `15m`, `6h`, `1d`), an ISO 8601 time, or
 * epoch milliseconds. Undefined when it is none of these (the route answers 400 naming the parameter).
 */
export function parseSince(value: unknown, nowMs: number): number | undefined {
  if (value === undefined || value === '') return nowMs - DEBUG_USAGE_SINCE_DEFAULT_MS
  if (typeof value !== 'string') return undefined
  const duration = DURATION.exec(value)
  if (duration !== null) return nowMs - Number(duration[1]) * (UNIT_MS[duration[2] ?? 's'] ?? 1_000)
  if (/^[0-9]{1,15}$/.test(value)) return Number(value)
  // An ISO time only: Date.parse takes many other spellings whose meaning depends on the platform.
  if (!/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) return undefined
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? undefined : ms
}

/**
 * `GET /debug/usage?since=&limit=`: per-user requests, tokens, 429s and 503s since a moment (minute
 * resolution, a day at most), every user under its own name, most tokens first.
 */
export function debugUsageRoute(usage: UsageTally, clock: Clock): AdminRoutes {
  return (admin) => {
    admin.get('/debug/usage', async (request, reply) => {
      const q = (request.query ?? {}) as Record<string, unknown>
      const sinceMs = parseSince(q['since'], clock.wallNow())
      if (sinceMs === undefined) {
        const error = errors.invalidRequest(
          ['since must be a duration (15m, 6h, 1d), an ISO 8601 time or epoch milliseconds'],
          { param: 'since' },
        )
        return reply.code(error.statusCode).send(error.toBody())
      }
      const report = usage.report(sinceMs, boundedInt(q['limit'], DEBUG_USAGE_USERS_DEFAULT, DEBUG_QUEUE_MAX))
      return {
        from: new Date(report.fromMs).toISOString(),
        to: new Date(report.toMs).toISOString(),
        bucketSeconds: USAGE_BUCKET_MS / 1000,
        totals: report.totals,
        users: report.users,
      }
    })
  }
}
