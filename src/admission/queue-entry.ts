import { errors, type KvgateError } from '../errors/index.js'
import type { Admission, AdmissionTicket, CapacityLimits, CapacitySnapshot, QueuedInfo } from './contracts.js'
import { OUTCOME } from './deadline-sweep.js'
import type { QueueItem, UserQueue } from './queue-store.js'
import type { TtftAfterAdmission } from './wait-calibration.js'

/**
 * What a ticket must pass before it may wait at all: some backend that may serve it is usable, and its
 * prompt fits the largest of them. Returns the limits it is held to, or the error to answer now.
 */
export function arrivalLimits(
  snapshot: CapacitySnapshot | undefined,
  ticket: AdmissionTicket,
  promptTokens: number,
): { readonly limits: CapacityLimits } | { readonly error: KvgateError } {
  // The backends that may serve it (its model's pool) when the view knows pools, else all of them.
  const limits =
    snapshot === undefined ? undefined : snapshot.limitsFor === undefined ? snapshot : snapshot.limitsFor(ticket)
  if (limits === undefined) {
    const why =
      snapshot === undefined
        ? 'every backend is down or its metrics are stale'
        : `no backend of model ${ticket.model} is usable`
    return { error: errors.noBackendAvailable([why], OUTCOME) }
  }
  // Against every backend with a known capacity, usable now or not: a big backend that is briefly stale
  // must not turn its requests into 400s.
  if (promptTokens > limits.maxKnownTokens) {
    return {
      error: errors.requestExceedsKvCapacity([promptTokens, Math.floor(limits.maxKnownTokens)], { param: 'messages' }),
    }
  }
  return { limits }
}

/**
 * The request's queue deadline: its own (the client's header or the default), or with `ttftSloMs` the SLO
 * less the expected time from admission to the first token for its prompt, if that is shorter. At least
 * 1 ms, so that a request the SLO leaves no time for is still admitted if it fits at once.
 */
export function queueDeadlineMs(
  ticket: AdmissionTicket,
  promptTokens: number,
  ttftSloMs: number | null,
  ttft: TtftAfterAdmission,
): number {
  const own = Math.max(0, ticket.deadlineMs)
  if (ttftSloMs === null) return own
  const afterAdmission = ttft.estimateMs(promptTokens) ?? 0
  return Math.min(own, Math.max(1, ttftSloMs - afterAdmission))
}

export interface QueueEntry {
  readonly seq: number
  readonly ticket: AdmissionTicket
  readonly promptTokens: number
  readonly needTokens: number
  readonly now: number
  readonly deadlineMs: number
  readonly userQueue: UserQueue
  readonly resolve: (admission: Admission) => void
  readonly reject: (error: KvgateError) => void
}

/** The queue item a ticket becomes, in no list or heap yet; its predicted output is what the capped need leaves. */
export function newQueueItem(entry: QueueEntry): QueueItem {
  const { ticket, promptTokens, needTokens, now, deadlineMs } = entry
  return {
    seq: entry.seq,
    ticket,
    request: {
      id: ticket.id,
      user: ticket.user,
      promptTokens,
      predictedOutputTokens: needTokens - promptTokens,
      enqueuedAtMs: now,
    },
    needTokens,
    enqueuedAtMs: now,
    deadlineMs,
    deadlineAtMs: now + deadlineMs,
    predictedWaitMs: undefined,
    needBucket: 0,
    userQueue: entry.userQueue,
    heapIndex: -1,
    prev: undefined,
    next: undefined,
    queued: true,
    bypassedSinceMs: undefined,
    quotaDenied: undefined,
    confirming: false,
    refusedEpoch: undefined,
    refusedUntilMs: undefined,
    resolve: entry.resolve,
    reject: entry.reject,
    onAbort: undefined,
  }
}

/** A queued item as the debug listing shows it. */
export function queuedInfo(item: QueueItem, now: number): QueuedInfo {
  return {
    id: item.ticket.id,
    user: item.ticket.user.name,
    model: item.ticket.model,
    promptTokens: item.request.promptTokens,
    predictedOutputTokens: item.request.predictedOutputTokens,
    needTokens: item.needTokens,
    waitedMs: now - item.enqueuedAtMs,
    deadlineInMs: item.deadlineAtMs - now,
    bypassedForMs: item.bypassedSinceMs === undefined ? null : now - item.bypassedSinceMs,
    quotaBlocked: item.quotaDenied !== undefined,
  }
}
