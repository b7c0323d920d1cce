import type { Random } from '../core/index.js'
import { randomNormal } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { LegacyRandom } from './mt19937.js'
import { asLegacyRandom } from './mt19937.js'

/**
 * The distributions of vLLM's multi-turn benchmark (`benchmarks/multi_turn/bench_dataset.py`), drawn with numpy's
 * legacy algorithms (`np.random.randint`, `uniform`, `lognormal`, `zipf`, `poisson`) from a seeded `Random`. Each is read from its JSON form (`{"distribution": "uniform", "min": 12, "max": 18}`),
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

/** numpy's `gen_mask`: the smallest all-ones bit mask covering `max`. */
function bitMask(max: number): number {
  let mask = max >>> 0
  mask |= mask >>> 1
  mask |= mask >>> 2
  mask |= mask >>> 4
  mask |= mask >>> 8
  mask |= mask >>> 16
  return mask >>> 0
}

/**
 * numpy's legacy `randint(low, high)` (high exclusive): a 32-bit word masked to the range, redrawn until it
 * falls inside (`buffered_bounded_masked_uint32`). Ranges beyond 2^32 do not occur for token counts.
 */
export function legacyRandint(random: LegacyRandom, low: number, highExclusive: number): number {
  const range = highExclusive - 1 - low
  if (range <= 0) return low
  if (range >= 0xffffffff) return low + random.nextUint32()
  const mask = bitMask(range)
  for (;;) {
    const value = (random.nextUint32() & mask) >>> 0
    if (value <= range) return low + value
  }
}

/** numpy's `random_poisson`: multiplication of uniforms below λ = 10, Hörmann's PTRS from 10 on. */
export function samplePoisson(random: Random, lambda: number): number {
  if (lambda >= 10) return poissonPtrs(random, lambda)
  if (lambda === 0) return 0
  const limit = Math.exp(-lambda)
  let k = 0
  let product = 1
  for (;;) {
    product *= random.next()
    if (product > limit) k++
    else return k
  }
}

function poissonPtrs(random: Random, lambda: number): number {
  const slam = Math.sqrt(lambda)
  const loglam = Math.log(lambda)
  const b = 0.931 + 2.53 * slam
  const a = -0.059 + 0.02483 * b
  const invalpha = 1.1239 + 1.1328 / (b - 3.4)
  const vr = 0.9277 - 3.6224 / (b - 2)
  for (;;) {
    const u = random.next() - 0.5
    const v = random.next()
    const us = 0.5 - Math.abs(u)
    const k = Math.floor(((2 * a) / us + b) * u + lambda + 0.43)
    if (us >= 0.07 && v <= vr) return k
    if (k < 0 || (us < 0.013 && v > us)) continue
    if (Math.log(v) + Math.log(invalpha) - Math.log(a / (us * us) + b) <= -lambda + k * loglam - logGamma(k + 1)) {
      return k
    }
  }
}

/** numpy's `random_loggam`: log Γ(x) by Stirling's series, shifted up to x ≥ 7. */
const LOGGAM_COEFFICIENTS = [
  8.333333333333333e-2, -2.777777777777778e-3, 7.936507936507937e-4, -5.952380952380952e-4, 8.417508417508418e-4,
  -1.917526917526918e-3, 6.41025641025641e-3, -2.955065359477124e-2, 1.796443723688307e-1, -1.3924322169059,
] as const
function logGamma(x: number): number {
  if (x === 1 || x === 2) return 0
  const n = x < 7 ? Math.trunc(7 - x) : 0
  let x0 = x + n
  const x2 = (1 / x0) * (1 / x0)
  let gl0 = LOGGAM_COEFFICIENTS[9]
  for (let k = 8; k >= 0; k--) gl0 = gl0 * x2 + (LOGGAM_COEFFICIENTS[k] as number)
  let gl = gl0 / x0 + 0.5 * 1.8378770664093453 + (x0 - 0.5) * Math.log(x0) - x0
  for (let k = 1; k <= n; k++) {
    gl -= Math.log(x0 - 1)
    x0 -= 1
  }
  return gl
}

/** Zipf(a) on 1, 2, … as numpy's legacy `zipf` draws it (Devroye's rejection method): exact for a > 1. */
export function sampleZipf(random: Random, alpha: number): number {
  const am1 = alpha - 1
  const b = 2 ** am1
  for (;;) {
    const u = 1 - random.next()
    const v = random.next()
    const x = Math.floor(u ** (-1 / am1))
    if (x < 1 || x > Number.MAX_SAFE_INTEGER) continue
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

/** numpy's legacy `lognormal(mean, sigma)`: exp of a polar-method normal draw. */
export function sampleLognormal(random: LegacyRandom, mu: number, sigma: number): number {
  return Math.exp(mu + sigma * random.gauss())
}

/** numpy's legacy `exponential(scale)`: −scale · log(1 − U). */
export function sampleExponential(random: Random, scale: number): number {
  return scale * -Math.log(1 - random.next())
}

/** `np.round`: halves go to the even neighbour (JavaScript's Math.round sends them up). */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x)
  const diff = x - floor
  if (diff > 0.5) return floor + 1
  if (diff < 0.5) return floor
  return floor % 2 === 0 ? floor : floor + 1
}

/**
 * numpy's `mean` of a float64 array: pairwise summation (8-way unrolled blocks of at most 128), so that the
 * rescaling of lognormal-by-average multiplies by the same factor as vLLM's `samples.mean()`.
 */
export function numpyMean(values: readonly number[]): number {
  const pairwise = (start: number, n: number): number => {
    if (n < 8) {
      let sum = -0
      for (let i = 0; i < n; i++) sum += values[start + i] as number
      return sum
    }
    if (n <= 128) {
      const r = values.slice(start, start + 8) as number[]
      let i = 8
      for (; i < n - (n % 8); i += 8)
        for (let j = 0; j < 8; j++) r[j] = (r[j] as number) + (values[start + i + j] as number)
      let sum = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!))
      for (; i < n; i++) sum += values[start + i] as number
      return sum
    }
    let half = Math.floor(n / 2)
    half -= half % 8
    return pairwise(start, half) + pairwise(start + half, n - half)
  }
  return values.length === 0 ? Number.NaN : pairwise(0, values.length) / values.length
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
export function createDistribution(raw: unknown, source: Random, where: string): Distribution {
  // numpy's samplers over the given generator: numpy's own MT19937 (`createNumpyRandomState`) reproduces vLLM's
  // draws, any other `Random` gives the same distributions with other numbers.
  const random = asLegacyRandom(source)
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
            integer ? legacyRandint(random, min, max + 1) : min + (max - min) * random.next(),
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
        // median/mean = exp(−σ²/2): σ = √(2·ln(average/median)), μ = ln(median), computed in vLLM's order.
        const median = average * ratio
        const sigma = Math.sqrt(2 * Math.log(average / median))
        const mu = Math.log(median)
        return {
          description: `lognormal(average ${average}, median_ratio ${ratio}${max ? `, max ${max}` : ''})`,
          sample(n) {
            const draws = Array.from({ length: n }, () => sampleLognormal(random, mu, sigma))
            // vLLM rescales each batch to the exact average (`samples *= average / samples.mean()`), then caps
            // and rounds half to even.
            const factor = average / numpyMean(draws)
            return draws.map((x) => roundHalfEven(capped(x * factor, max)))
          },
        }
      }
      const mean = field(spec, 'mean', where)
      const sigma = field(spec, 'sigma', where)
      if (mean <= 0 || sigma < 0) throw errors.invalidWorkload([where, 'lognormal mean must be > 0 and sigma ≥ 0'])
      return {
        description: `lognormal(mean ${mean}, sigma ${sigma}${max ? `, max ${max}` : ''})`,
        sample: (n) =>
          Array.from({ length: n }, () => roundHalfEven(capped(sampleLognormal(random, mean, sigma), max))),
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
