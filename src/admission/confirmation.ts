import type { Reservation } from '../ledger/index.js'
import type { RateLimitState } from '../policies/index.js'
import type { AdmissionConfirmer, ConfirmVerdict, Placement } from './contracts.js'
import type { PolicyGuard } from './policy-guard.js'
import type { QueueItem } from './queue-store.js'

/** Ask the shared ledger to confirm a reservation just made here: undefined = admit now. */
export function askConfirmation(
  confirmer: AdmissionConfirmer,
  policy: PolicyGuard,
  item: QueueItem,
  placement: Placement,
  reservation: Reservation,
  now: number,
): Promise<ConfirmVerdict> | undefined {
  return confirmer.confirm({
    reservation,
    request: item.request,
    placement,
    policyName: policy.policy.name,
    limits: policy.rateLimits(item.ticket.user, now),
  })
}

/**
 * How a queued head waits on a shared ledger (see `AdmissionConfirmer`): while its admission is being
 * confirmed it is passed over like a quota-blocked head (its user's later requests wait behind it); once
 * refused for room it is not tried again until the confirmer's epoch moves (a release anywhere, a poll), so a
 * refusal cannot turn into a loop of refusals; refused by a shared quota, it waits for the quota's time.
 */
export function waitingOnConfirmation(
  item: QueueItem,
  now: number,
  epoch: number | undefined,
): 'quota' | 'held-by-kv' | undefined {
  if (item.confirming) return 'quota'
  if (item.refusedUntilMs !== undefined) {
    if (now < item.refusedUntilMs) return 'quota'
    item.refusedUntilMs = undefined
  }
  if (item.refusedEpoch !== undefined) {
    if (item.refusedEpoch === epoch) return 'held-by-kv'
    item.refusedEpoch = undefined
  }
  return undefined
}

/** A refused confirmation: the item stays at its user's head and records what it waits for. */
export function noteRefusal(
  item: QueueItem,
  verdict: Extract<ConfirmVerdict, { confirmed: false }>,
  now: number,
  epoch: number | undefined,
  limits: RateLimitState,
): void {
  if (verdict.retryAfterMs === undefined) {
    item.refusedEpoch = epoch
    return
  }
  item.refusedUntilMs = now + verdict.retryAfterMs
  // Kept for the deadline's 429: it waited on a quota, as a policy's own denial would say.
  item.quotaDenied = {
    allowed: false,
    retryAfterMs: verdict.retryAfterMs,
    reason: verdict.quotaReason ?? 'the shared quota',
    limits,
  }
}
