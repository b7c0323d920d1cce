import { describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { createDistribution, gammaArrivalsMs, generateConversations, scheduleTrace } from '../../src/bench/index.js'
import { mean, sampleStd } from '../../src/bench/statistics.js'

const random = () => createSeededRandom(42)

describe("vLLM's generate_conversations distributions", () => {
  it('constant and integer uniform', () => {
    expect(createDistribution({ distribution: 'constant', value: 7 }, random(), 'f').sample(3)).toEqual([7, 7, 7])
    const u = createDistribution({ distribution: 'uniform', min: 12, max: 18 }, random(), 'f').sample(2000)
    expect(Math.min(...u)).toBe(12)
    expect(Math.max(...u)).toBe(18)
    expect(u.every(Number.isInteger)).toBe(true)
  })

  it('lognormal by average is rescaled to the average per batch, capped and rounded', () => {
    const d = createDistribution({ distribution: 'lognormal', average: 1000 }, random(), 'f')
    const xs = d.sample(500)
    expect(Math.abs(mean(xs) - 1000)).toBeLessThan(1) // only rounding moves it
    const sorted = [...xs].sort((a, b) => a - b)
    // median/average ≈ 0.85 by construction
    expect((sorted[250] as number) / 1000).toBeGreaterThan(0.7)
    expect((sorted[250] as number) / 1000).toBeLessThan(1)
    const capped = createDistribution({ distribution: 'lognormal', average: 1000, max: 1200 }, random(), 'f').sample(
      500,
    )
    expect(Math.max(...capped)).toBe(1200)
  })

  it('lognormal by mean and sigma of the underlying normal', () => {
    const xs = createDistribution({ distribution: 'lognormal', mean: 3, sigma: 0.5 }, random(), 'f').sample(4000)
    const logs = xs.filter((x) => x > 0).map(Math.log)
    expect(mean(logs)).toBeGreaterThan(2.9)
    expect(mean(logs)).toBeLessThan(3.1)
  })

  it('zipf is ≥ 1, heavy at 1, and capped', () => {
    const xs = createDistribution({ distribution: 'zipf', alpha: 2, max: 50 }, random(), 'f').sample(5000)
    expect(Math.min(...xs)).toBe(1)
    expect(Math.max(...xs)).toBeLessThanOrEqual(50)
    // P(1) = 1/ζ(2) ≈ 0.608
    const ones = xs.filter((x) => x === 1).length / xs.length
    expect(ones).toBeGreaterThan(0.57)
    expect(ones).toBeLessThan(0.65)
  })

  it('poisson has mean and variance alpha', () => {
    const xs = createDistribution({ distribution: 'poisson', alpha: 10 }, random(), 'f').sample(5000)
    expect(mean(xs)).toBeGreaterThan(9.8)
    expect(mean(xs)).toBeLessThan(10.2)
    expect(sampleStd(xs) ** 2).toBeGreaterThan(9.3)
    expect(sampleStd(xs) ** 2).toBeLessThan(10.7)
  })

  it('rejects an unknown distribution naming the field', () => {
    expect(() => createDistribution({ distribution: 'pareto' }, random(), 'prompt_input.num_tokens')).toThrow(
      /prompt_input\.num_tokens: unknown distribution "pareto"/,
    )
  })

  it('num_turns is raised to 2 and rounded up to even (user turns = half)', () => {
    const spec = (turns: number) => ({
      num_conversations: 2,
      prompt_input: {
        num_turns: { distribution: 'constant', value: turns },
        prefix_num_tokens: { distribution: 'constant', value: 5 },
        num_tokens: { distribution: 'constant', value: 20 },
      },
      prompt_output: { num_tokens: { distribution: 'constant', value: 8 } },
    })
    expect(generateConversations(spec(1), random(), 'x').conversations[0]?.turns).toHaveLength(1)
    expect(generateConversations(spec(3), random(), 'x').conversations[0]?.turns).toHaveLength(2)
    expect(generateConversations(spec(6), random(), 'x').conversations[0]?.turns).toHaveLength(3)
    const c = generateConversations(spec(4), random(), 'x').conversations[0]
    expect(c).toMatchObject({
      prefixTokens: 5,
      turns: [
        { userTokens: 20, outputTokens: 8 },
        { userTokens: 20, outputTokens: 8 },
      ],
    })
  })
})

describe('arrivals', () => {
  it('gamma arrivals have mean gap 1/rate; burstiness < 1 is burstier (larger gap spread)', () => {
    const gaps = (burstiness: number) => {
      const t = gammaArrivalsMs(4000, 10, burstiness, random())
      return t.slice(1).map((v, i) => v - (t[i] as number))
    }
    const poisson = gaps(1)
    expect(mean(poisson)).toBeGreaterThan(95)
    expect(mean(poisson)).toBeLessThan(105)
    expect(sampleStd(poisson) / mean(poisson)).toBeCloseTo(1, 1) // exponential: CV 1
    const bursty = gaps(0.25)
    expect(mean(bursty)).toBeGreaterThan(90)
    expect(mean(bursty)).toBeLessThan(110)
    expect(sampleStd(bursty) / mean(bursty)).toBeGreaterThan(1.7) // CV = 1/√0.25 = 2
  })

  it('time scale, duration, request cap and Zipf labels', () => {
    const trace = Array.from({ length: 100 }, (_, i) => ({ arrivalMs: i * 1000, inputTokens: 10, outputTokens: 5 }))
    const out = scheduleTrace(trace, {
      timeScale: 0.01,
      durationSec: 0.5,
      maxNumRequests: 40,
      zipfUsers: { numUsers: 5, alpha: 1.5 },
      random: random(),
    })
    expect(out).toHaveLength(40)
    expect(out[10]?.arrivalMs).toBeCloseTo(100, 6)
    const counts = new Map<string, number>()
    for (const r of out) counts.set(r.user as string, (counts.get(r.user as string) ?? 0) + 1)
    expect([...counts.keys()].every((u) => /^user-[1-5]$/.test(u))).toBe(true)
    expect(counts.get('user-1') ?? 0).toBeGreaterThan(counts.get('user-5') ?? 0)
    const cut = scheduleTrace(trace, { timeScale: 0.01, durationSec: 0.5, random: random() })
    expect(cut).toHaveLength(51) // 0 … 500 ms inclusive
  })
})
