import { Type } from 'typebox'
import { greaterThan } from '../../core/index.js'

export const DEFAULT_POLL_INTERVAL_MS = 100 // 100 ms between two polls of a backend's /metrics
export const DEFAULT_POLL_TIMEOUT_MS = 1_000 // 1 second for headers and body of one poll
export const DEFAULT_STALE_AFTER_MS = 1_000 // 1 second without a good poll takes a backend out of admission

const positiveMs = (defaultMs: number) => Type.Integer({ minimum: 1, default: defaultMs })

/**
 * How each backend's /metrics is read. `staleAfterMs` must exceed `intervalMs`: a good poll is `intervalMs`
 * plus a round trip old when the next one lands, so a backend would leave admission between every two polls.
 * `timeoutMs` has no rule: a poll slower than `staleAfterMs` makes the backend stale, which is the point.
 */
export const metricsPollSection = Type.Object(
  {
    intervalMs: positiveMs(DEFAULT_POLL_INTERVAL_MS),
    timeoutMs: positiveMs(DEFAULT_POLL_TIMEOUT_MS),
    staleAfterMs: positiveMs(DEFAULT_STALE_AFTER_MS),
  },
  { additionalProperties: false, default: {}, crossField: [greaterThan('staleAfterMs', 'intervalMs')] },
)
