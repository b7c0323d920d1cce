import { randomNormal, type Random } from '../core/index.js'
import type { OutputLengthDistribution } from './options.js'

/**
 * Draws how many tokens a request "wants" to generate before its end-of-sequence token, standing in for the
 * model's EOS. The engine caps the draw by `max_tokens` and raises it to `min_tokens`.
 */
export type OutputLengthSampler = () => number

export function createOutputLengthSampler(distribution: OutputLengthDistribution, random: Random): OutputLengthSampler {
  switch (distribution.type) {
    case 'constant':
      return () => Math.max(1, Math.round(distribution.value))
    case 'uniform': {
      const { min, max } = distribution
      return () => Math.max(1, min + Math.floor(random.next() * (max - min + 1)))
    }
    case 'lognormal': {
      // vLLM's benchmarks/multi_turn convention: σ = √(2·ln(1/medianRatio)), μ = ln(average·medianRatio),
      // so the median is average·medianRatio and the mean is `average`.
      const medianRatio = distribution.medianRatio ?? 0.85
      const sigma = Math.sqrt(2 * Math.log(1 / medianRatio))
      const mu = Math.log(distribution.average * medianRatio)
      const cap = distribution.max ?? Number.POSITIVE_INFINITY
      return () => Math.max(1, Math.min(cap, Math.round(Math.exp(mu + sigma * randomNormal(random)))))
    }
  }
}
