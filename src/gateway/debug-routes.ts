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
