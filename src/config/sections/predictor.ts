import { Type } from 'typebox'
import { atLeast } from '../../core/index.js'

export const DEFAULT_QUANTILE = 0.9 // P90 of observed completion lengths
export const DEFAULT_WINDOW_SIZE = 1_000 // completions remembered per model
export const DEFAULT_COLD_START_OUTPUT_TOKENS = 256 // prediction before minSamples completions were seen
export const DEFAULT_MIN_SAMPLES = 20 // completions per model before the quantile is trusted

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
  },
  { additionalProperties: false, default: {}, crossField: [atLeast('windowSize', 'minSamples')] },
)
