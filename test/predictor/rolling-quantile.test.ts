import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { KvgateError } from '../../src/errors/index.js'
import { createPredictor } from '../../src/predictor/index.js'

const options = { quantile: 0.9, windowSize: 10, coldStartOutputTokens: 256, minSamples: 5 }

describe('predictor: rolling quantile of completion lengths', () => {
  it('starts at the cold-start figure, capped by max_tokens, and learns towards the data by minSamples', () => {
    const p = createPredictor(options)
    expect(p.predict('m', undefined)).toBe(256)
    expect(p.predict('m', 100)).toBe(100)
    // From 256 towards the window's P90 (10): the cold figure weighs (1 − n/5)².
    p.observe('m', 256, 10)
    expect(p.predict('m', undefined)).toBe(Math.round(256 * 0.64 + 10 * 0.36))
    for (let i = 0; i < 3; i++) p.observe('m', 256, 10)
    expect(p.predict('m', undefined)).toBe(Math.round(256 * 0.04 + 10 * 0.96))
    p.observe('m', 256, 10)
    expect(p.predict('m', undefined)).toBe(10)
  })

  it('never predicts below the longest answer seen while it is still learning', () => {
    const p = createPredictor(options)
    p.observe('m', 256, 700)
    expect(p.predict('m', undefined)).toBe(700)
  })

  it('takes the nearest-rank quantile over the window and forgets what falls out of it', () => {
    const p = createPredictor(options)
    for (let v = 1; v <= 10; v++) p.observe('m', 0, v * 10) // 10..100
    expect(p.predict('m', undefined)).toBe(90) // ceil(0.9 × 10) = 9th smallest
    expect(p.predict('m', 50)).toBe(50)
    for (let i = 0; i < 10; i++) p.observe('m', 0, 7) // the old lengths roll out
    expect(p.predict('m', undefined)).toBe(7)
    expect(p.predict('other', undefined)).toBe(256) // per model
  })

  it('matches a sort of the window on random data', () => {
    const p = createPredictor({ quantile: 0.95, windowSize: 200, coldStartOutputTokens: 1, minSamples: 1 })
    const all: number[] = []
    let seed = 7
    for (let i = 0; i < 2_000; i++) {
      seed = (seed * 48271) % 2147483647
      const v = seed % 1_000
      all.push(v)
      p.observe('m', 0, v)
      const window = all.slice(-200).sort((a, b) => a - b)
      expect(p.predict('m', undefined)).toBe(window[Math.ceil(0.95 * window.length) - 1])
    }
  })

  it('reports coverage and over-reservation over the window', () => {
    const p = createPredictor(options)
    p.observe('m', 100, 40) // covered, 60 over
    p.observe('m', 100, 100) // covered, 0 over
    p.observe('m', 100, 150) // not covered
    p.observe('m', 100, 80) // covered, 20 over
    const [stats] = p.stats()
    expect(stats).toMatchObject({ model: 'm', samples: 4, observed: 4, coldStart: true, coverageRatio: 0.75 })
    expect(stats?.overReservationRatio).toBeCloseTo(80 / 400)
    // 4 of 5 samples: (1/5)² of the cold figure, the rest the P90 (150), and at least the longest answer.
    expect(stats?.quantileTokens).toBe(Math.round(256 * 0.04 + 150 * 0.96))
  })

  it('is never built from nonsense options: the config refuses them first, naming the field', () => {
    const refusal = (predictor: Record<string, unknown>): string => {
      try {
        parseConfig({ predictor })
      } catch (err) {
        expect(err).toBeInstanceOf(KvgateError)
        return (err as KvgateError).message
      }
      return 'accepted'
    }
    expect(refusal({ quantile: 0 })).toBe('Invalid configuration: predictor.quantile: must be > 0')
    expect(refusal({ windowSize: 0, minSamples: 0 })).toBe(
      'Invalid configuration: predictor.windowSize: must be >= 1; predictor.minSamples: must be >= 1',
    )
    // The default minSamples (20) does not fit a window of 10: the quantile would never be trusted.
    expect(refusal({ windowSize: 10 })).toBe(
      'Invalid configuration: predictor.windowSize: must be >= predictor.minSamples (20)',
    )
    expect(refusal({ windowSize: 10, minSamples: 10 })).toBe('accepted')
  })
})

describe('predictor: bounded memory', () => {
  it('forgets the least recently observed model past maxModels (names come from clients)', () => {
    const p = createPredictor({ ...options, minSamples: 1, maxModels: 2 })
    p.observe('a', 0, 11)
    p.observe('b', 0, 22)
    p.observe('a', 0, 11) // a is the most recent now
    p.observe('c', 0, 33) // evicts b
    expect(
      p
        .stats()
        .map((s) => s.model)
        .sort(),
    ).toEqual(['a', 'c'])
    expect(p.predict('b', undefined)).toBe(256)
    expect(p.predict('a', undefined)).toBe(11)
  })
})
