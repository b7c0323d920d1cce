import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OUTPUT_TOKENS_XARG, startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, promptOf, stream } from './support.js'

/**
 * The bench's wire contract: `"vllm_xargs": {"kvgate_sim_output_tokens": N}` is where the answer ends, as a
 * model's end-of-sequence would end it, on both routes, streamed and not, for every choice; `max_tokens` cuts
 * it shorter with `length`, `min_tokens` stretches it, `ignore_eos` runs to `max_tokens`; a bad value is a 400.
 */
type Choice = { finish_reason: string; text?: string; message?: { content: string } }
type Body = { choices: Choice[]; usage: { completion_tokens: number } }

const xargs = (n: unknown) => ({ vllm_xargs: { [OUTPUT_TOKENS_XARG]: n } })

describe('out-of-band output length (vllm_xargs.kvgate_sim_output_tokens)', () => {
  let sim: SimHandle
  beforeAll(async () => {
    // A drawn length would be 300: anything else below comes from the request.
    sim = await startSim({ speed: 100, maxModelLen: 4096, outputLength: { type: 'constant', value: 300 } })
  })
  afterAll(async () => {
    await sim.close()
  })

  const chat = { messages: [{ role: 'user', content: promptOf(20) }] }
  const completion = { prompt: promptOf(20) }

  it('ends the answer after N tokens with stop, streamed and not, on both routes', async () => {
    for (const [route, base] of [
      ['/v1/chat/completions', chat],
      ['/v1/completions', completion],
    ] as const) {
      const whole = (await postJson(`${sim.url}${route}`, { ...base, max_tokens: 1000, ...xargs(37) })).json as Body
      expect(whole.usage.completion_tokens).toBe(37)
      expect(whole.choices[0]!.finish_reason).toBe('stop')

      const streamed = await stream(`${sim.url}${route}`, {
        ...base,
        ...xargs(37),
        // Completions default max_tokens to 16 (vLLM's default), chat to the rest of the context.
        ...(route === '/v1/completions' ? { max_tokens: 1000 } : {}),
        stream: true,
        stream_options: { include_usage: true },
      })
      expect(streamed.done).toBe(true)
      expect((streamed.events.at(-1)!['usage'] as { completion_tokens: number }).completion_tokens).toBe(37)
      const finishes = streamed.events
        .flatMap((e) => (e['choices'] as Choice[] | undefined) ?? [])
        .map((c) => c.finish_reason)
        .filter((f) => f !== null)
      expect(finishes).toEqual(['stop'])
    }
  })

  it('max_tokens (or max_completion_tokens) below N stops there with length', async () => {
    const cut = (await postJson(`${sim.url}/v1/completions`, { ...completion, max_tokens: 10, ...xargs(37) }))
      .json as Body
    expect(cut.usage.completion_tokens).toBe(10)
    expect(cut.choices[0]!.finish_reason).toBe('length')
    const chatCut = (
      await postJson(`${sim.url}/v1/chat/completions`, { ...chat, max_completion_tokens: 12, ...xargs(37) })
    ).json as Body
    expect(chatCut.usage.completion_tokens).toBe(12)
    expect(chatCut.choices[0]!.finish_reason).toBe('length')
    // /v1/completions without max_tokens defaults to 16, as in vLLM: a client that sends none is cut there.
    const defaulted = (await postJson(`${sim.url}/v1/completions`, { ...completion, ...xargs(37) })).json as Body
    expect(defaulted.usage.completion_tokens).toBe(16)
    expect(defaulted.choices[0]!.finish_reason).toBe('length')
    // Equal to N: the answer ends with the limit, which vLLM reports as length.
    const exact = (await postJson(`${sim.url}/v1/completions`, { ...completion, max_tokens: 37, ...xargs(37) }))
      .json as Body
    expect(exact.usage.completion_tokens).toBe(37)
    expect(exact.choices[0]!.finish_reason).toBe('length')
  })

  it('min_tokens above N extends the answer; ignore_eos runs to max_tokens', async () => {
    const longer = (
      await postJson(`${sim.url}/v1/completions`, { ...completion, max_tokens: 100, min_tokens: 50, ...xargs(20) })
    ).json as Body
    expect(longer.usage.completion_tokens).toBe(50)
    expect(longer.choices[0]!.finish_reason).toBe('stop')
    const below = (
      await postJson(`${sim.url}/v1/completions`, { ...completion, max_tokens: 100, min_tokens: 5, ...xargs(20) })
    ).json as Body
    expect(below.usage.completion_tokens).toBe(20)
    const eos = (
      await postJson(`${sim.url}/v1/completions`, { ...completion, max_tokens: 60, ignore_eos: true, ...xargs(20) })
    ).json as Body
    expect(eos.usage.completion_tokens).toBe(60)
    expect(eos.choices[0]!.finish_reason).toBe('length')
  })

  it('gives every one of n choices the same length', async () => {
    const body = (await postJson(`${sim.url}/v1/chat/completions`, { ...chat, n: 3, max_tokens: 500, ...xargs(9) }))
      .json as Body
    expect(body.choices.map((c) => c.finish_reason)).toEqual(['stop', 'stop', 'stop'])
    expect(body.usage.completion_tokens).toBe(27)
    const streamed = await stream(`${sim.url}/v1/completions`, {
      ...completion,
      n: 2,
      ...xargs(9),
      max_tokens: 500,
      stream: true,
      stream_options: { include_usage: true },
    })
    const tokensPerChoice = [0, 1].map(
      (i) =>
        streamed.events.filter((e) => ((e['choices'] as Array<{ index: number }> | undefined) ?? [])[0]?.index === i)
          .length,
    )
    expect(tokensPerChoice).toEqual([9, 9])
  })

  it('N = 0 is an end-of-sequence first: one token without text', async () => {
    const body = (await postJson(`${sim.url}/v1/chat/completions`, { ...chat, ...xargs(0) })).json as Body
    expect(body.usage.completion_tokens).toBe(1)
    expect(body.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: '' } })
  })

  it('other vllm_xargs keys are accepted and ignored, as vLLM passes them to logits processors', async () => {
    const { status, json } = await postJson(`${sim.url}/v1/completions`, {
      ...completion,
      max_tokens: 100,
      vllm_xargs: { [OUTPUT_TOKENS_XARG]: 4, other: 'x', list: [1, 'a'] },
    })
    expect(status).toBe(200)
    expect((json as Body).usage.completion_tokens).toBe(4)
  })

  it("refuses a bad value with a 400 in vLLM's shape, before any generation", async () => {
    for (const bad of [-1, 2.5, '12', [3]]) {
      const { status, json } = await postJson(`${sim.url}/v1/completions`, { ...completion, ...xargs(bad) })
      expect(status, JSON.stringify(bad)).toBe(400)
      expect(json).toEqual({
        error: {
          message: `vllm_xargs.${OUTPUT_TOKENS_XARG} must be a non-negative integer, got ${JSON.stringify(bad)}.`,
          type: 'BadRequestError',
          param: `vllm_xargs.${OUTPUT_TOKENS_XARG}`,
          code: 400,
        },
      })
    }
    // vLLM's own type check on vllm_xargs: values are strings, numbers or lists of them.
    const nested = await postJson(`${sim.url}/v1/completions`, { ...completion, vllm_xargs: { x: { y: 1 } } })
    expect(nested.status).toBe(400)
    expect(nested.json.error).toMatchObject({ type: 'BadRequestError', code: 400 })
    expect(sim.engineState()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0 })
  })
})
