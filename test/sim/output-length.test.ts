import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, promptOf, stream } from './support.js'

type Completion = {
  choices: Array<{ finish_reason: string; text?: string }>
  usage: { completion_tokens: number; prompt_tokens: number }
}

/** How many tokens a request gets: max_tokens, min_tokens, ignore_eos and the seeded length distribution. */
describe('output lengths', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({
      speed: 100,
      maxModelLen: 2048,
      outputLength: { type: 'uniform', min: 5, max: 40 },
      seed: 11,
    })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('ignore_eos produces exactly max_tokens tokens, streamed and not', async () => {
    for (const maxTokens of [1, 2, 17, 100]) {
      const result = await stream(`${sim.url}/v1/completions`, {
        prompt: promptOf(30),
        max_tokens: maxTokens,
        ignore_eos: true,
        stream: true,
      })
      expect(result.events).toHaveLength(maxTokens)
      expect((result.events.at(-1)!['choices'] as Array<{ finish_reason: string }>)[0]!.finish_reason).toBe('length')
      const whole = await postJson(`${sim.url}/v1/chat/completions`, {
        messages: [{ role: 'user', content: 'x' }],
        max_tokens: maxTokens,
        ignore_eos: true,
      })
      expect(whole.json.usage.completion_tokens).toBe(maxTokens)
    }
  })

  it('without ignore_eos draws from the distribution, stops with `stop`, and respects the caps', async () => {
    const lengths: number[] = []
    for (let i = 0; i < 20; i++) {
      const { json } = (await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 1000 })) as {
        json: Completion
      }
      lengths.push(json.usage.completion_tokens)
      expect(json.choices[0]!.finish_reason).toBe('stop')
    }
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(5)
    expect(Math.max(...lengths)).toBeLessThanOrEqual(40)
    expect(new Set(lengths).size).toBeGreaterThan(3)

    const capped = (await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 3 })).json as Completion
    expect(capped.usage.completion_tokens).toBe(3)
    expect(capped.choices[0]!.finish_reason).toBe('length')

    const floored = (await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 200, min_tokens: 150 }))
      .json as Completion
    expect(floored.usage.completion_tokens).toBeGreaterThanOrEqual(150)
  })

  it('the same seed gives the same lengths', async () => {
    const run = async (): Promise<number[]> => {
      const other = await startSim({ speed: 100, outputLength: { type: 'lognormal', average: 50 }, seed: 5 })
      try {
        const out: number[] = []
        for (let i = 0; i < 8; i++)
          out.push(
            ((await postJson(`${other.url}/v1/completions`, { prompt: 'hi', max_tokens: 500 })).json as Completion)
              .usage.completion_tokens,
          )
        return out
      } finally {
        await other.close()
      }
    }
    expect(await run()).toEqual(await run())
  })

  it('defaults: completions 16 tokens; chat up to the rest of the context; chat prefers max_completion_tokens', async () => {
    const completion = (await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', ignore_eos: true }))
      .json as Completion
    expect(completion.usage.completion_tokens).toBe(16)
    const chat = await postJson(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: promptOf(2000) }],
      ignore_eos: true,
    })
    expect(chat.json.usage.prompt_tokens).toBe(2002)
    expect(chat.json.usage.completion_tokens).toBe(2048 - 2002)
    const preferred = await postJson(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 9,
      max_completion_tokens: 4,
      ignore_eos: true,
    })
    expect(preferred.json.usage.completion_tokens).toBe(4)
  })
})
