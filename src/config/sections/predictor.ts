import { Type } from 'typebox'
import { atLeast, nullable } from '../../core/index.js'
import { DEFAULT_USER_MIN_SAMPLES, DEFAULT_USER_WINDOW_SIZE } from '../../predictor/index.js'

export const DEFAULT_QUANTILE = 0.9 // P90 of observed completion lengths
export const DEFAULT_WINDOW_SIZE = 1_000 // completions remembered per model
/**
 * Prediction for a model never seen (capped by max_tokens): long on purpose, since an under-prediction is
 * what preempts; each completion moves it towards the data (docs/admission-quality.md).
 */
export const DEFAULT_COLD_START_OUTPUT_TOKENS = 1_024
export const DEFAULT_MIN_SAMPLES = 20 // completions per model before the quantile alone is trusted
export const DEFAULT_STATE_SAVE_INTERVAL_MS = 60_000 // 1 minute between two writes of predictor.stateFile

/**
 * Output-length prediction (src/predictor trusts these values). The window must hold `minSamples`
 * completions, or the quantile would never be trusted and every request would get the cold-start figure.
 */
export const predictorSection = Type.Object(
  {
    quantile: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: DEFAULT_QUANTILE }),
    windowSize: Type.Integer({ minimum: 1, default: DEFAULT_WINDOW_SIZE }),
    coldStartOutputTokens: Type.Integer({ minimum: 1, default: DEFAULT_COLD_START_OUTPUT_TOKENS }),
    minSamples: Type.Integer({ minimum: 1, default: DEFAULT_MIN_SAMPLES }),
    /** Completions remembered per user and model; 0 = no per-user windows (the model's window for everyone). */
    userWindowSize: Type.Integer({ minimum: 0, default: DEFAULT_USER_WINDOW_SIZE }),
    /** A user's own completions before its own window predicts for it. */
    userMinSamples: Type.Integer({ minimum: 1, default: DEFAULT_USER_MIN_SAMPLES }),
    /** Where the windows are kept over a restart (read at start, written every stateSaveIntervalMs and at shutdown). */
    stateFile: nullable(Type.String({ minLength: 1 }), { default: null }),
    stateSaveIntervalMs: Type.Integer({ minimum: 1_000, default: DEFAULT_STATE_SAVE_INTERVAL_MS }),
  },
  { additionalProperties: false, default: {}, crossField: [atLeast('windowSize', 'minSamples')] },
)
