import type { CapacitySnapshot } from './contracts.js'
import type { QueueItem, QueueStore, UserQueue } from './queue-store.js'

/**
 * Why a queued request is still waiting, as far as admission can tell at this moment:
 *
 * - `no_backend`: no backend is usable (all down, stale or unhealthy); nothing is admitted until one is.
 * - `quota`: its user's quota (tpm, dynamic-tpm) held it back at the last decision.
 * - `behind_own_requests`: its user has older requests queued; each user's queue is first in, first out.
 * - `too_large`: its need exceeds what any usable backend holds when empty; it waits for a larger one.
 * - `no_room`: no usable backend has room for its need now (KV in use plus reservations plus headroom).
 * - `policy_order`: it would fit now but has not been picked yet: the policy put other users first, or a
 *   larger head ahead of it has been bypassed for `maxBypassMs` and now holds the queue until it fits.
 */
export const WAIT_REASONS = [
  'no_backend',
  'quota',
  'behind_own_requests',
  'too_large',
  'no_room',
  'policy_order',
] as const
export type WaitReason = (typeof WAIT_REASONS)[number]

export interface QueueViewOptions {
  /** Users shown, those with the most queued first. */
  readonly maxUsers: number
  /** Requests shown per user, oldest first. */
  readonly maxItemsPerUser: number
  /** Only this user. */
  readonly user?: string | undefined
}

export interface QueueViewItem {
  readonly id: string
  readonly model: string
  readonly waitedMs: number
  readonly deadlineInMs: number
  readonly promptTokens: number
  readonly predictedOutputTokens: number
  readonly needTokens: number
  readonly reason: WaitReason
  /** With `quota`: which quota, and when it could pass at the earliest. */
  readonly quota?: { readonly reason: string; readonly retryAfterMs: number }
  /** How long others have been admitted past it (null if never bypassed). */
  readonly bypassedForMs: number | null
}

export interface QueueViewUser {
  readonly user: string
  readonly weight: number
  readonly queued: number
  readonly needTokens: number
  readonly oldestWaitMs: number
  /** How many of its requests wait for each reason (all of them, not only those listed). */
  readonly reasons: Partial<Record<WaitReason, number>>
  readonly items: readonly QueueViewItem[]
}

export interface QueueView {
  readonly queued: number
  readonly queuedNeedTokens: number
  readonly users: number
  /** The most room on one usable backend now (null: none is usable). */
  readonly maxRoomTokens: number | null
  readonly shownUsers: readonly QueueViewUser[]
}

/** The queue per user, bounded; O(queued) for the users shown, O(users log users) to pick them. */
export function buildQueueView(
  store: QueueStore,
  snapshot: CapacitySnapshot | undefined,
  now: number,
  options: QueueViewOptions,
): QueueView {
  const queues = [...store.userQueues()].filter((q) => options.user === undefined || q.name === options.user)
  // Most queued first; the longest wait breaks ties, then the name, so the page is stable between two reads.
  queues.sort(
    (a, b) =>
      b.size - a.size || (a.head?.enqueuedAtMs ?? 0) - (b.head?.enqueuedAtMs ?? 0) || (a.name < b.name ? -1 : 1),
  )
  return {
    queued: store.depth,
    queuedNeedTokens: store.queuedNeedTokens,
    users: store.users,
    maxRoomTokens: snapshot === undefined ? null : Math.max(0, Math.floor(snapshot.maxRoomTokens)),
    shownUsers: queues.slice(0, options.maxUsers).map((queue) => userView(queue, snapshot, now, options)),
  }
}

function userView(
  queue: UserQueue,
  snapshot: CapacitySnapshot | undefined,
  now: number,
  options: QueueViewOptions,
): QueueViewUser {
  const items: QueueViewItem[] = []
  const reasons: Partial<Record<WaitReason, number>> = {}
  for (let item = queue.head; item !== undefined; item = item.next) {
    const reason = waitReason(item, item === queue.head, snapshot)
    reasons[reason] = (reasons[reason] ?? 0) + 1
    if (items.length < options.maxItemsPerUser) items.push(itemView(item, reason, now))
  }
  return {
    user: queue.name,
    weight: queue.weight,
    queued: queue.size,
    needTokens: queue.needTokens,
    oldestWaitMs: queue.head === undefined ? 0 : now - queue.head.enqueuedAtMs,
    reasons,
    items,
  }
}

function waitReason(item: QueueItem, isHead: boolean, snapshot: CapacitySnapshot | undefined): WaitReason {
  if (snapshot === undefined) return 'no_backend'
  if (!isHead) return 'behind_own_requests'
  if (item.quotaDenied !== undefined) return 'quota'
  if (item.needTokens > snapshot.maxUsableTokens) return 'too_large'
  if (item.needTokens > snapshot.maxRoomTokens) return 'no_room'
  return 'policy_order'
}

function itemView(item: QueueItem, reason: WaitReason, now: number): QueueViewItem {
  const quota = item.quotaDenied
  return {
    id: item.ticket.id,
    model: item.ticket.model,
    waitedMs: now - item.enqueuedAtMs,
    deadlineInMs: item.deadlineAtMs - now,
    promptTokens: item.request.promptTokens,
    predictedOutputTokens: item.request.predictedOutputTokens,
    needTokens: item.needTokens,
    reason,
    ...(reason === 'quota' && quota !== undefined
      ? { quota: { reason: quota.reason, retryAfterMs: Math.max(0, Math.round(quota.retryAfterMs)) } }
      : {}),
    bypassedForMs: item.bypassedSinceMs === undefined ? null : now - item.bypassedSinceMs,
  }
}
