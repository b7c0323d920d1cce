import { errors, type KvgateError } from '../errors/index.js'
import type { RateLimitState, WaitAhead } from '../policies/index.js'
import { OUTCOME } from './deadline-sweep.js'
import type { QueueItem } from './queue-store.js'
import { formatDuration, rejectionHeaders } from './retry-after.js'
import { EARLY_REJECT_QUANTILE, RETRY_AFTER_QUANTILE } from './wait-calibration.js'
import type { WaitPrediction } from './wait-prediction.js'

export interface ArrivalRejection {
  readonly error: KvgateError
  readonly retryAfterMs: number
  /** What to shadow once it has left the queue, to check the prediction afterwards. */
  readonly shadow?: { readonly ahead: WaitAhead; readonly predictedMs: number; readonly bucket: number }
}

export interface ArrivalContext {
  readonly earlyReject: boolean
  readonly now: number
  /** The user's x-ratelimit figures for a KV rejection's headers (asked only when rejecting). */
  rateLimits(): RateLimitState
}

/**
 * A request that could not be admitted at once, as it joins the queue: its wait is predicted in the policy's
 * order and kept on the item (to be checked against what happens), and with `earlyReject` a request that
 * cannot make its deadline is answered now:
 *
 * - its own quota cannot clear before its deadline: 429 `quota_exceeded` with the quota's reset as
 *   retry-after (it was known on arrival; waiting the deadline out would only delay the same answer);
 * - its KV wait, scaled by the low quantile of how such predictions turned out, is past its deadline: 429
 *   `predicted_wait_exceeds_deadline` with the median-scaled wait as retry-after. Only a measured drain rate
 *   may claim that; the caller shadows the request, so the queue afterwards says whether it was right.
 *
 * Returns the rejection, or undefined when the request stays.
 */
export function arrivalVerdict(
  item: QueueItem,
  ahead: WaitAhead,
  prediction: WaitPrediction,
  context: ArrivalContext,
): ArrivalRejection | undefined {
  const { now } = context
  const bucket = prediction.bucketOf(item.needTokens)
  const kvMs = prediction.rawWaitMs({ ...ahead, quotaWaitMs: 0 }, item.needTokens, now)
  const measured = prediction.measuredRate(now) !== undefined
  // Only a prediction from a measured drain rate is checked: the cold guess says nothing about the model.
  if (measured) {
    item.predictedWaitMs = Math.max(ahead.quotaWaitMs, kvMs)
    item.needBucket = bucket
  }
  if (!context.earlyReject) return undefined
  const user = item.ticket.user.name
  if (ahead.quotaWaitMs > item.deadlineMs && ahead.quota !== undefined) {
    const waitMs = ahead.quotaWaitMs
    const error = errors.quotaExceeded([user, ahead.quota.reason, formatDuration(Math.max(1_000, waitMs))], {
      ...OUTCOME,
      headers: rejectionHeaders(errors.quotaExceeded.code, waitMs, ahead.quota.limits),
    })
    return { error, retryAfterMs: waitMs }
  }
  if (!measured) return undefined
  if (prediction.calibrated(kvMs, bucket, EARLY_REJECT_QUANTILE) <= item.deadlineMs) return undefined
  const waitMs = Math.max(ahead.quotaWaitMs, prediction.calibrated(kvMs, bucket, RETRY_AFTER_QUANTILE))
  const error = errors.predictedWaitTooLong(
    [formatDuration(waitMs), formatDuration(item.deadlineMs), formatDuration(Math.max(1_000, waitMs))],
    { ...OUTCOME, headers: rejectionHeaders(errors.predictedWaitTooLong.code, waitMs, context.rateLimits()) },
  )
  return { error, retryAfterMs: waitMs, shadow: { ahead, predictedMs: kvMs, bucket } }
}
