import { Type } from 'typebox'

export const DEFAULT_HEALTH_INTERVAL_MS = 2_000 // 2 seconds between two GET /health of a backend
export const DEFAULT_HEALTH_TIMEOUT_MS = 1_000 // 1 second for one check

/**
 * Each backend's own `GET /health`, apart from its `/metrics`: vLLM answers 503 once its engine died, while
 * its API server (and so `/metrics`) still answers. A backend whose last check failed leaves admission
 * until a check succeeds; one that was never checked is not admitted to yet.
 */
export const healthCheckSection = Type.Object(
  {
    intervalMs: Type.Integer({ minimum: 1, default: DEFAULT_HEALTH_INTERVAL_MS }),
    timeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_HEALTH_TIMEOUT_MS }),
  },
  { additionalProperties: false, default: {} },
)
