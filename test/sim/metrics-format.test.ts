import { describe, expect, it } from 'vitest'
import { build125Buckets, formatFloat, Histogram } from '../../src/sim/metrics.js'

/** Number formatting and buckets as vLLM's Python prometheus_client writes them (values checked against Python). */
describe('metrics number format', () => {
  it('formats floats like floatToGoString(repr(x))', () => {
    const cases: Array<[number, string]> = [
      [0, '0.0'],
      [1, '1.0'],
      [0.5, '0.5'],
      [0.00005, '5e-05'],
      [1e-7, '1e-07'],
      [123456, '123456.0'],
      [1234567, '1.234567e+06'],
      [12345678.5, '1.23456785e+07'],
      [1795663626.123, '1.795663626123e+09'],
      [1e17, '1e+17'],
      [0.1 + 0.2, '0.30000000000000004'],
      [Number.POSITIVE_INFINITY, '+Inf'],
    ]
    for (const [value, text] of cases) expect(formatFloat(value), String(value)).toBe(text)
  })

  it('builds 1-2-5 buckets up to max_model_len', () => {
    expect(build125Buckets(100)).toEqual([1, 2, 5, 10, 20, 50, 100])
    expect(build125Buckets(4096)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000])
  })

  it('renders cumulative buckets, count and sum', () => {
    const h = new Histogram([1, 2])
    for (const v of [0.5, 1, 1.5, 3]) h.observe(v)
    const out: string[] = []
    h.render('x', (le) => (le === undefined ? 'a="1"' : `a="1",le="${le}"`), out)
    expect(out).toEqual([
      'x_bucket{a="1",le="1.0"} 2.0',
      'x_bucket{a="1",le="2.0"} 3.0',
      'x_bucket{a="1",le="+Inf"} 4.0',
      'x_count{a="1"} 4.0',
      'x_sum{a="1"} 6.0',
    ])
  })
})
