import { Type } from 'typebox'
import { nullable } from '../../core/index.js'

export const DEFAULT_MODELS_REFRESH_INTERVAL_MS = 30_000 // 30 seconds between two reads of a backend's /v1/models
export const DEFAULT_MODELS_RETRY_INTERVAL_MS = 1_000 // 1 second between reads while a backend's list is unknown
/**
 * How far the local token estimate may be from the backend's tokenizer, as a share of the estimate: a
 * request is refused for its context length only when even `estimate × (1 − margin)` is too long. 0.25
 * covers the word-piece counter against a BPE on English prose and JSON (within about ±20%, docs/routing.md).
 */
export const DEFAULT_CONTEXT_ESTIMATE_MARGIN_RATIO = 0.25

/**
 * Model pools: which backend serves which model (from each backend's `/v1/models`, or `backends[].models`),
 * what a request that names no model gets, and the context-length check against a pool's `max_model_len`.
 */
export const modelsSection = Type.Object(
  {
    /**
     * The model of a request that names none; null = what vLLM serves then: the first model listed by the
     * first backend (in `backends` order) whose list is known.
     */
    default: nullable(Type.String({ minLength: 1, maxLength: 256 }), { default: null }),
    refreshIntervalMs: Type.Integer({ minimum: 1, default: DEFAULT_MODELS_REFRESH_INTERVAL_MS }),
    retryIntervalMs: Type.Integer({ minimum: 1, default: DEFAULT_MODELS_RETRY_INTERVAL_MS }),
    /** Answer 400 at once, as vLLM would, for a prompt (+ max_tokens) longer than the pool's max_model_len. */
    contextLengthCheck: Type.Boolean({ default: true }),
    /** Slack for an estimated prompt (none for an exact count: token ids, or `admission.exactPromptTokens`). */
    estimateMarginRatio: Type.Number({
      minimum: 0,
      exclusiveMaximum: 1,
      default: DEFAULT_CONTEXT_ESTIMATE_MARGIN_RATIO,
    }),
  },
  { additionalProperties: false, default: {} },
)
