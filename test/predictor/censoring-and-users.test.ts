import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/core/index.js'
import { createPredictor, keepPredictorState, loadPredictorState } from '../../src/predictor/index.js'

const options = { quantile: 0.9, windowSize: 100, coldStartOutputTokens: 1_024, minSamples: 5, userMinSamples: 5 }

describe('predictor: censored completions', () => {
  it('sets aside answers cut by max_tokens below the prediction: 1,000 of max_tokens 1 change nothing', () => {
    const p = createPredictor(options)
    for (let i = 0; i < 1_000; i++) p.observe('m', 1, 1, { user: 'poisoner', finishReason: 'length', maxTokens: 1 })
    expect(p.predict('m', undefined)).toBe(1_024)
    expect(p.predict('m', undefined, 'someone-else')).toBe(1_024)
    expect(p.predict('m', undefined, 'poisoner')).toBe(1_024)
    const [stats] = p.stats()
    expect(stats).toMatchObject({ observed: 1_000, censored: 1_000, samples: 0, coverageRatio: 1 })
  })

  it('treats an answer that reached max_tokens as cut even without a finish reason', () => {
    const p = createPredictor(options)
    p.observe('m', 8, 8, { maxTokens: 8 })
    expect(p.stats()[0]?.censored).toBe(1)
  })

  it('keeps a cut answer longer than the prediction: it can only raise the quantile', () => {
    const p = createPredictor({ ...options, minSamples: 1 })
    for (let i = 0; i < 10; i++) p.observe('m', 1_024, 100)
    expect(p.predict('m', undefined)).toBe(100)
    p.observe('m', 100, 50, { finishReason: 'length', maxTokens: 50 }) // below: set aside
    expect(p.predict('m', undefined)).toBe(100)
    for (let i = 0; i < 5; i++) p.observe('m', 100, 400, { finishReason: 'length', maxTokens: 400 })
    expect(p.predict('m', undefined)).toBe(400)
  })
})

describe('predictor: windows per user', () => {
  it("predicts a user with enough history from its own window; another user's short answers leave it alone", () => {
    const p = createPredictor(options)
    for (let i = 0; i < 20; i++) p.observe('m', 0, 500, { user: 'writer' })
    for (let i = 0; i < 200; i++) p.observe('m', 0, 10, { user: 'terse' })
    expect(p.predict('m', undefined, 'writer')).toBe(500)
    expect(p.predict('m', undefined, 'terse')).toBe(10)
    // A newcomer gets the model's window, which the terse user dominates...
    expect(p.predict('m', undefined, 'newcomer')).toBe(10)
    // ...and a user still learning is never predicted below the longest answer it had.
    p.observe('m', 0, 300, { user: 'newcomer' })
    expect(p.predict('m', undefined, 'newcomer')).toBe(300)
  })

  it('falls back to the model window for everyone when per-user windows are off', () => {
    const p = createPredictor({ ...options, userWindowSize: 0 })
    for (let i = 0; i < 20; i++) p.observe('m', 0, 500, { user: 'writer' })
    for (let i = 0; i < 200; i++) p.observe('m', 0, 10, { user: 'terse' })
    expect(p.predict('m', undefined, 'writer')).toBe(10)
    expect(p.stats()[0]?.users).toBe(0)
  })

  it('bounds the users it tracks per model', () => {
    const p = createPredictor({ ...options, maxUsersPerModel: 3 })
    for (const user of ['a', 'b', 'c', 'd']) p.observe('m', 0, 5, { user })
    expect(p.stats()[0]?.users).toBe(3)
  })
})

describe('predictor: state over a restart', () => {
  let dir: string | undefined
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
    dir = undefined
  })

  it('snapshot and restore carry the windows: a restarted predictor predicts what the old one did', () => {
    const p = createPredictor(options)
    for (let i = 1; i <= 50; i++) p.observe('m', 0, i * 10, { user: i % 2 === 0 ? 'even' : 'odd' })
    const q = createPredictor(options)
    q.restore(p.snapshot())
    for (const user of [undefined, 'even', 'odd', 'stranger']) {
      expect(q.predict('m', undefined, user)).toBe(p.predict('m', undefined, user))
    }
  })

  it('keepPredictorState seeds from the file, writes it on a timer and at stop, and survives a bad file', () => {
    dir = mkdtempSync(join(tmpdir(), 'kvgate-predictor-'))
    const path = join(dir, 'state.json')
    const clock = createManualClock()
    const errors: string[] = []
    const first = createPredictor(options)
    const kept = keepPredictorState({
      predictor: first,
      path,
      clock,
      intervalMs: 1_000,
      onError: (_e, during) => errors.push(during),
    })
    for (let i = 0; i < 10; i++) first.observe('m', 0, 42)
    clock.advance(1_000)
    expect(loadPredictorState(path)?.models['m']?.lengths).toHaveLength(10)
    first.observe('m', 0, 42)
    kept.stop()
    expect(loadPredictorState(path)?.models['m']?.lengths).toHaveLength(11)

    const second = createPredictor(options)
    keepPredictorState({ predictor: second, path, clock, intervalMs: 1_000, onError: () => {} }).stop()
    expect(second.predict('m', undefined)).toBe(42)

    writeFileSync(path, 'not json')
    const third = createPredictor(options)
    keepPredictorState({ predictor: third, path, clock, intervalMs: 1_000, onError: (_e, d) => errors.push(d) })
    expect(errors).toEqual(['load'])
    expect(third.predict('m', undefined)).toBe(1_024)
  })
})
