import type { Random } from '../core/index.js'
import { randomNormal } from '../core/index.js'
import { errors } from '../errors/index.js'

/**
 * The distributions of vLLM's multi-turn benchmark (`benchmarks/multi_turn/bench_dataset.py`), drawn from a
 * seeded `Random`. Each is read from its JSON form (`{"distribution": "uniform", "min": 12, "max": 18}`),
 * and samples a batch because lognormal-by-average rescales a batch to its average, as vLLM does.
 */
export interface Distribution {
  readonly description: string
  /** `size` integer samples (uniform with float bounds gives floats, as numpy does). */
  sample(size: number): number[]
}

export type DistributionSpec =
  | { distribution: 'constant'; value: number }
  | { distribution: 'uniform'; min: number; max: number }
  | { distribution: 'lognormal'; average: number; median_ratio?: number; max?: number }
  | { distribution: 'lognormal'; mean: number; sigma: number; max?: number }
  | { distribution: 'zipf'; alpha: number; max?: number }
  | { distribution: 'poisson'; alpha: number; max?: number }

/** vLLM's default median/average ratio for lognormal-by-average: "a relatively wide range of values". */
export const DEFAULT_LOGNORMAL_MEDIAN_RATIO = 0.85

const capped = (value: number, max: number | undefined): number =>
  max === undefined || max === 0 ? value : Math.min(value, max)

/** Knuth's multiplication method for small λ, normal approximation (rounded, ≥ 0) above 500. */
export function samplePoisson(random: Random, lambda: number): number {
  if (lambda > 500) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * randomNormal(random)))
  const limit = Math.exp(-lambda)
  let k = 0
  let p = random.next()
  while (p > limit) {
    k++
    p *= random.next()
  }
  return k
}

/**
 * Zipf(a) on 1, 2, … (numpy's `random.zipf`), by Devroye's rejection method, which is what numpy uses:
 * exact for any a > 1, unbounded.
 */
export function sampleZipf(random: Random, alpha: number): number {
  const am1 = alpha - 1
  const b = 2 ** am1
  for (;;) {
    const u = 1 - random.next()
    const v = random.next()
    const x = Math.floor(u ** (-1 / am1))
    if (x < 1 || !Number.isFinite(x)) continue
    const t = (1 + 1 / x) ** am1
    if ((v * x * (t - 1)) / (b - 1) <= t / b) return x
  }
}

/** Gamma(shape, scale) by Marsaglia and Tsang (shape < 1 boosted by U^(1/shape)). */
export function sampleGamma(random: Random, shape: number, scale: number): number {
  if (shape < 1) {
    const u = 1 - random.next()
    return sampleGamma(random, shape + 1, scale) * u ** (1 / shape)
  }
  const d = shape - 1 / 3
  const c = 1 / Math.sqrt(9 * d)
  for (;;) {
    let x: number
    let v: number
    do {
      x = randomNormal(random)
      v = 1 + c * x
    } while (v <= 0)
    v = v * v * v
    const u = 1 - random.next()
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale
  }
}

export function sampleLognormal(random: Random, mu: number, sigma: number): number {
  return Math.exp(mu + sigma * randomNormal(random))
}

function field(spec: Record<string, unknown>, name: string, where: string): number {
  const value = spec[name]
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw errors.invalidWorkload([where, `distribution ${String(spec['distribution'])} needs a number "${name}"`])
  }
  return value
}

function optional(spec: Record<string, unknown>, name: string, where: string): number | undefined {
  return spec[name] === undefined || spec[name] === null ? undefined : field(spec, name, where)
}

/** Build a distribution from its JSON form; `where` names the field in errors (`prompt_input.num_tokens`). */
export function createDistribution(raw: unknown, random: Random, where: string): Distribution {
  if (raw === null || typeof raw !== 'object') throw errors.invalidWorkload([where, 'expected a distribution object'])
  const spec = raw as Record<string, unknown>
  const kind = spec['distribution']
  switch (kind) {
    case 'constant': {
      const value = field(spec, 'value', where)
      return { description: `constant(${value})`, sample: (n) => Array.from({ length: n }, () => value) }
    }
    case 'uniform': {
      const min = field(spec, 'min', where)
      const max = field(spec, 'max', where)
      if (min > max) throw errors.invalidWorkload([where, `uniform min ${min} > max ${max}`])
      const integer = Number.isInteger(min) && Number.isInteger(max)
      return {
        description: `uniform(${min}, ${max})`,
        sample: (n) =>
          Array.from({ length: n }, () =>
            integer ? min + Math.floor(random.next() * (max - min + 1)) : min + random.next() * (max - min),
          ),
      }
    }
    case 'lognormal': {
      const max = optional(spec, 'max', where)
      const average = optional(spec, 'average', where)
      if (average !== undefined) {
        if (average < 1) throw errors.invalidWorkload([where, 'lognormal average must be ≥ 1'])
        const ratio = optional(spec, 'median_ratio', where) ?? DEFAULT_LOGNORMAL_MEDIAN_RATIO
        if (!(ratio > 0 && ratio < 1)) throw errors.invalidWorkload([where, 'lognormal median_ratio must be in (0, 1)'])
        // median/mean = exp(−σ²/2): σ = √(2·ln(1/ratio)), μ = ln(average·ratio).
        const sigma = Math.sqrt(2 * Math.log(1 / ratio))
        const mu = Math.log(average * ratio)
        return {
          description: `lognormal(average ${average}, median_ratio ${ratio}${max ? `, max ${max}` : ''})`,
          sample(n) {
            const draws = Array.from({ length: n }, () => sampleLognormal(random, mu, sigma))
            // vLLM rescales each batch to the exact average, then caps and rounds.
            const batchMean = draws.reduce((a, b) => a + b, 0) / Math.max(1, n)
            return draws.map((x) => Math.round(capped((x * average) / batchMean, max)))
          },
        }
      }
      const mean = field(spec, 'mean', where)
      const sigma = field(spec, 'sigma', where)
      if (mean <= 0 || sigma < 0) throw errors.invalidWorkload([where, 'lognormal mean must be > 0 and sigma ≥ 0'])
      return {
        description: `lognormal(mean ${mean}, sigma ${sigma}${max ? `, max ${max}` : ''})`,
        sample: (n) => Array.from({ length: n }, () => Math.round(capped(sampleLognormal(random, mean, sigma), max))),
      }
    }
    case 'zipf': {
      const alpha = field(spec, 'alpha', where)
      if (!(alpha > 1)) throw errors.invalidWorkload([where, 'zipf alpha must be > 1'])
      const max = optional(spec, 'max', where)
      return {
        description: `zipf(${alpha}${max ? `, max ${max}` : ''})`,
        sample: (n) => Array.from({ length: n }, () => capped(sampleZipf(random, alpha), max)),
      }
    }
    case 'poisson': {
      const alpha = field(spec, 'alpha', where)
      if (!(alpha >= 0)) throw errors.invalidWorkload([where, 'poisson alpha must be ≥ 0'])
      const max = optional(spec, 'max', where)
      return {
        description: `poisson(${alpha}${max ? `, max ${max}` : ''})`,
        sample: (n) => Array.from({ length: n }, () => capped(samplePoisson(random, alpha), max)),
      }
    }
    default:
      throw errors.invalidWorkload([
        where,
        `unknown distribution ${JSON.stringify(kind)} (constant, uniform, lognormal, zipf, poisson)`,
      ])
  }
}
