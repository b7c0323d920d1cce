import { Type } from 'typebox'
import { greaterThan } from '../../core/index.js'

export const DEFAULT_POLL_INTERVAL_MS = 100 // 100 ms between two polls of a backend's /metrics
export const DEFAULT_POLL_TIMEOUT_MS = 1_000 // 1 second for headers and body of one poll
export const DEFAULT_STALE_AFTER_MS = 1_000 // 1 second without a good poll takes a backend out of admission
export const DEFAULT_MAX_METRICS_BYTES = 4 * 1024 * 1024 // 4 MiB: vLLM's page is tens of KiB, hundreds with many LoRAs
export const DEFAULT_MAX_CAPACITY_TOKENS = 100_000_000 // 100M tokens of KV: ~100× a large node; above it a report is a lie

const positiveMs = (defaultMs: number) => Type.Integer({ minimum: 1, default: defaultMs })

/**
 * How each backend's /metrics is read. `staleAfterMs` must exceed `intervalMs`: a good poll is `intervalMs`
 * plus a round trip old when the next one lands, so a backend would leave admission between every two polls.
 * `timeoutMs` has no rule: a poll slower than `staleAfterMs` makes the backend stale, which is the point.
 *
 * The upstream is semi-trusted: a page larger than `maxBodyBytes` is a failed poll (read no further), and a
 * capacity above `maxCapacityTokens` (configured or reported) makes the backend unusable, as does a usage
 * outside [0, 1].
 */
export const metricsPollSection = Type.Object(
  {
    intervalMs: positiveMs(DEFAULT_POLL_INTERVAL_MS),
    timeoutMs: positiveMs(DEFAULT_POLL_TIMEOUT_MS),
    staleAfterMs: positiveMs(DEFAULT_STALE_AFTER_MS),
    maxBodyBytes: Type.Integer({ minimum: 1024, default: DEFAULT_MAX_METRICS_BYTES }),
    maxCapacityTokens: Type.Integer({ minimum: 1, default: DEFAULT_MAX_CAPACITY_TOKENS }),
  },
  { additionalProperties: false, default: {}, crossField: [greaterThan('staleAfterMs', 'intervalMs')] },
)
