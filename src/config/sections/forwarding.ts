import { Type } from 'typebox'

export const DEFAULT_FORWARD_HEADERS_TIMEOUT_MS = 600_000 // 10 minutes: a non-streaming answer's headers come when it is complete
export const DEFAULT_FORWARD_IDLE_TIMEOUT_MS = 120_000 // 2 minutes without a byte of an admitted response: the backend is wedged

/**
 * Limits on an admitted request's upstream call. Without them a backend that stops answering (while its
 * /metrics still does) would hold the request, and its KV reservation, until the client gave up.
 */
export const forwardingSection = Type.Object(
  {
    headersTimeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_FORWARD_HEADERS_TIMEOUT_MS }),
    idleTimeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_FORWARD_IDLE_TIMEOUT_MS }),
  },
  { additionalProperties: false, default: {} },
)
