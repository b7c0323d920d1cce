import { describe as group, expect, it } from 'vitest'
import { describe, fitZipf, jainIndex, maxMinFairShares, quantile } from '../../src/bench/index.js'

// Expected values are pandas' own: pd.Series(values).describe(percentiles=[.25, .5, .75, .9(, .99)]).
group("pandas describe() as vLLM's multi-turn bench calls it", () => {
  it('matches pandas on a small sample (no 99% below 100 values)', () => {
    const d = describe([10, 1, 4, 3, 2])
    expect(Object.keys(d)).toEqual(['count', 'mean', 'std', 'min', '25%', '50%', '75%', '90%', 'max'])
    expect(d['count']).toBe(5)
    expect(d['mean']).toBe(4)
    expect(d['std']).toBeCloseTo(3.5355339, 6) // sample std, ddof = 1
    expect(d['min']).toBe(1)
    expect(d['25%']).toBe(2)
    expect(d['50%']).toBe(3)
    expect(d['75%']).toBe(4)
    expect(d['90%']).toBeCloseTo(7.6, 10) // linear: 4 + 0.6 × (10 − 4)
    expect(d['max']).toBe(10)
  })

  it('adds 99.9% at 1,000 values and 99.99% at 10,000, as vLLM does', () => {
    const d = describe(Array.from({ length: 10_000 }, (_, i) => i + 1))
    expect(Object.keys(d)).toEqual([
      'count',
      'mean',
      'std',
      'min',
      '25%',
      '50%',
      '75%',
      '90%',
      '99%',
      '99.9%',
      '99.99%',
      'max',
    ])
    expect(d['99.99%']).toBeCloseTo(9999.0001, 6) // linear: position 9999 × 0.9999
    expect(Object.keys(describe(Array.from({ length: 9_999 }, (_, i) => i)))).not.toContain('99.99%')
  })

  it('matches pandas on 1..100, where 99% appears', () => {
    const d = describe(Array.from({ length: 100 }, (_, i) => i + 1))
    expect(Object.keys(d)).toEqual(['count', 'mean', 'std', 'min', '25%', '50%', '75%', '90%', '99%', 'max'])
    expect(d['mean']).toBe(50.5)
    expect(d['std']).toBeCloseTo(29.011492, 5)
    expect(d['25%']).toBeCloseTo(25.75, 10)
    expect(d['50%']).toBeCloseTo(50.5, 10)
    expect(d['75%']).toBeCloseTo(75.25, 10)
    expect(d['90%']).toBeCloseTo(90.1, 10)
    expect(d['99%']).toBeCloseTo(99.01, 10)
  })

  it('adds 99.9% at 1,000 values', () => {
    const d = describe(Array.from({ length: 1000 }, (_, i) => i))
    expect(d['99.9%']).toBeCloseTo(998.001, 9)
    expect(d['99%']).toBeCloseTo(989.01, 9)
  })

  it('gives NaN std for one value and NaN everything for none, as pandas does', () => {
    expect(describe([5])['std']).toBeNaN()
    expect(describe([5])['50%']).toBe(5)
    const empty = describe([])
    expect(empty['count']).toBe(0)
    expect(empty['mean']).toBeNaN()
  })

  it('interpolates quantiles linearly between neighbours', () => {
    expect(quantile([1, 2], 0.5)).toBe(1.5)
    expect(quantile([0, 10, 20, 30], 1 / 3)).toBeCloseTo(10, 10)
  })
})

group('fairness figures', () => {
  it("Jain's index is 1 for equal shares and 1/n when one user takes all", () => {
    expect(jainIndex([3, 3, 3, 3])).toBe(1)
    expect(jainIndex([1, 0, 0, 0])).toBe(0.25)
    expect(jainIndex([1, 2])).toBeCloseTo(0.9, 10) // 9 / (2 × 5)
  })

  it('max-min fair shares meet small demands in full and split the rest evenly', () => {
    expect(maxMinFairShares([10, 50, 100], 90)).toEqual([10, 40, 40])
    expect(maxMinFairShares([10, 20], 100)).toEqual([10, 20])
    expect(maxMinFairShares([0, 30], 10)).toEqual([0, 10])
  })

  it('fits a Zipf exponent to ranked counts', () => {
    const counts = Array.from({ length: 20 }, (_, k) => 1000 * (k + 1) ** -1.5)
    const fit = fitZipf(counts)
    expect(fit?.alpha).toBeCloseTo(1.5, 6)
    expect(fit?.rSquared).toBeCloseTo(1, 6)
  })
})
