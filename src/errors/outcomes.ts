/**
 * How a request ended: the one fixed list, used as the `outcome` label of `kvgate_requests_total`, in the
 * per-request log line and on admission's events. Outcomes are not errors: an error keeps the detail (its
 * message, its code), the outcome stays low-cardinality. Every error of the registry declares the outcome it
 * ends a request with (`KvgateError.outcome`), so nobody maps codes back to outcomes.
 */
export const REQUEST_OUTCOMES = [
  'completed',
  'rejected_deadline',
  'rejected_queue_full',
  'rejected_early',
  'rejected_quota',
  'rejected_unavailable',
  'cancelled_queued',
  'cancelled_streaming',
  /** A request being forwarded when shutdown's grace period ran out: kvgate cut it, not the backend. */
  'cancelled_shutdown',
  'upstream_error',
  'invalid_request',
  /** 401: no key, or one that is not configured (`identity.requireAuth`); answered before the body is read. */
  'unauthenticated',
  /** 404: a path kvgate does not route (not one of vLLM's, not allow-listed); answered before the body is read. */
  'not_found',
  /** Answered without admission: a read-only or allow-listed pass-through, or kvgate's own `/health`. */
  'served',
  /** A bug in kvgate or in one of its policies: logged with a stack, answered 500 if nothing was sent yet. */
  'internal_error',
] as const
export type RequestOutcome = (typeof REQUEST_OUTCOMES)[number]
