/**
 * The statistics vLLM's benchmarks print, computed the way pandas computes them, so a kvgate figure can be
 * set beside a vLLM one: `describe()` gives count, mean, sample std (ddof = 1), min, linear-interpolation
 * percentiles and max.
 */

/** pandas' default quantile (`interpolation='linear'`): position (n − 1)·q between the sorted neighbours. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const position = (sorted.length - 1) * q
  const lower = Math.floor(position)
  const upper = Math.ceil(position)
  const a = sorted[lower] as number
  const b = sorted[upper] as number
  return a + (b - a) * (position - lower)
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  let sum = 0
  for (const v of values) sum += v
  return sum / values.length
}

/** Sample standard deviation (ddof = 1), NaN below two values, as pandas gives. */
export function sampleStd(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN
  const m = mean(values)
  let squares = 0
  for (const v of values) squares += (v - m) ** 2
  return Math.sqrt(squares / (values.length - 1))
}

/**
 * The percentiles vLLM's multi-turn bench asks `describe()` for: 25/50/75/90, plus 99 at ≥ 100 samples, 99.9 at
 * ≥ 1,000 and 99.99 at ≥ 10,000 (a tail percentile from fewer samples is just the max).
 */
export function describePercentiles(count: number): number[] {
  const out = [0.25, 0.5, 0.75, 0.9]
  if (count >= 100) out.push(0.99)
  if (count >= 1000) out.push(0.999)
  if (count >= 10_000) out.push(0.9999)
  return out
}

/** pandas' column label for a percentile: `25%`, `99.9%`. */
export function percentileLabel(q: number): string {
  return `${Number((q * 100).toFixed(4))}%`
}

/** One row of `describe()`: label → value, in pandas' column order. */
export type Description = Record<string, number>

export function describe(values: readonly number[], percentiles = describePercentiles(values.length)): Description {
  const sorted = [...values].sort((a, b) => a - b)
  const out: Description = { count: sorted.length, mean: mean(sorted), std: sampleStd(sorted) }
  out['min'] = sorted.length > 0 ? (sorted[0] as number) : Number.NaN
  for (const q of percentiles) out[percentileLabel(q)] = quantile(sorted, q)
  out['max'] = sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN
  return out
}

/**
 * Jain's fairness index (Σx)² / (n·Σx²): 1 when all x are equal, 1/n when one takes everything. NaN for no
 * values; 1 when every x is 0 (nobody got anything, equally).
 */
export function jainIndex(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  let sum = 0
  let squares = 0
  for (const v of values) {
    sum += v
    squares += v * v
  }
  return squares === 0 ? 1 : (sum * sum) / (values.length * squares)
}

/**
 * Max-min fair shares of `total` among demands (water-filling): every demand below the water level is met in
 * full, the rest get the level. Jain's index of served/fair-share is then 1 exactly when the service was
 * max-min fair, whatever the users asked for (Jain et al. normalise by the "optimal fair" allocation too).
 */
export function maxMinFairShares(demands: readonly number[], total: number): number[] {
  const shares = demands.map(() => 0)
  let remaining = total
  let open = demands.map((d, i) => ({ d, i })).filter(({ d }) => d > 0)
  while (open.length > 0 && remaining > 1e-9) {
    const level = remaining / open.length
    const satisfied = open.filter(({ d, i }) => d - (shares[i] as number) <= level)
    if (satisfied.length === 0) {
      for (const { i } of open) shares[i] = (shares[i] as number) + level
      break
    }
    for (const { d, i } of satisfied) {
      remaining -= d - (shares[i] as number)
      shares[i] = d
    }
    open = open.filter(({ d, i }) => d - (shares[i] as number) > 1e-9)
  }
  return shares
}

/** Least-squares fit of log(share) = c − alpha·log(rank) over ranked shares (largest first), with R². */
export function fitZipf(counts: readonly number[]): { alpha: number; rSquared: number } | undefined {
  const ranked = counts.filter((c) => c > 0).sort((a, b) => b - a)
  if (ranked.length < 3) return undefined
  const xs = ranked.map((_, i) => Math.log(i + 1))
  const ys = ranked.map((c) => Math.log(c))
  const mx = mean(xs)
  const my = mean(ys)
  let sxy = 0
  let sxx = 0
  let syy = 0
  xs.forEach((x, i) => {
    const y = ys[i] as number
    sxy += (x - mx) * (y - my)
    sxx += (x - mx) ** 2
    syy += (y - my) ** 2
  })
  const slope = sxy / sxx
  const rSquared = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy)
  return { alpha: -slope, rSquared }
}
