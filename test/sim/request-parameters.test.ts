import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { createManualClock } from '../../src/core/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, stream, waitFor } from './support.js'

/** vLLM's other sampling parameters an emulator must honour: `n`, `seed`, `request_id`. */
describe('request parameters', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ speed: 100, outputLength: { type: 'uniform', min: 5, max: 60 } })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('n > 1 returns n choices and counts their tokens together', async () => {
    const { json } = await postJson(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      n: 3,
      max_tokens: 7,
      ignore_eos: true,
    })
    expect(json.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2])
    for (const choice of json.choices) expect(choice.message.content.trim().split(' ')).toHaveLength(7)
    expect(json.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 21, total_tokens: 24 })
    const metrics = await (await request(`${sim.url}/metrics`)).body.text()
    expect(metrics).toMatch(/^vllm:request_params_n_bucket\{engine="0",le="2\.0",model_name="kvgate-sim"\} 0\.0$/m)
    expect(metrics).toMatch(/^vllm:request_params_n_bucket\{engine="0",le="5\.0",model_name="kvgate-sim"\} 1\.0$/m)
  })

  it('n > 1 streams every choice with its index and one usage chunk at the end', async () => {
    const result = await stream(`${sim.url}/v1/completions`, {
      prompt: 'hi',
      n: 2,
      max_tokens: 5,
      ignore_eos: true,
      stream: true,
      stream_options: {},
    })
    expect(result.done).toBe(true)
    const byIndex = [0, 1].map((i) =>
      result.events.filter((e) => (e['choices'] as Array<{ index: number }>)[0]?.index === i),
    )
    for (const events of byIndex) {
      expect(events).toHaveLength(5)
      expect((events.at(-1)!['choices'] as Array<{ finish_reason: string }>)[0]!.finish_reason).toBe('length')
    }
    expect(result.events.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 1, completion_tokens: 10, total_tokens: 11 },
    })
  })

  it('n > 1 counts each choice as a sequence in the batch (engine on a manual clock)', async () => {
    const clock = createManualClock()
    const frozen = await startSim({}, { clock })
    try {
      const pending = postJson(`${frozen.url}/v1/completions`, { prompt: 'hi', n: 4, max_tokens: 50, ignore_eos: true })
      await waitFor(() => frozen.engineState().waiting === 4, 5_000, 'four sequences to queue')
      clock.advance(20)
      expect(frozen.engineState().running).toBe(4)
      clock.advance(10_000)
      expect((await pending).json.usage.completion_tokens).toBe(200)
    } finally {
      await frozen.close()
    }
  })

  it('the same seed gives the same text and length, whatever else is served', async () => {
    const ask = async (): Promise<string> => {
      const { json } = await postJson(`${sim.url}/v1/completions`, { prompt: 'tell me', seed: 42, max_tokens: 100 })
      return json.choices[0].text as string
    }
    const first = await ask()
    await postJson(`${sim.url}/v1/completions`, { prompt: 'something else', max_tokens: 30 })
    expect(await ask()).toBe(first)
    const other = await postJson(`${sim.url}/v1/completions`, { prompt: 'tell me', seed: 43, max_tokens: 100 })
    expect(other.json.choices[0].text).not.toBe(first)
  })

  it('names the response after X-Request-Id, else the body request_id', async () => {
    const fromBody = await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 1, request_id: 'abc-123' })
    expect(fromBody.json.id).toBe('cmpl-abc-123')
    const res = await request(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'trace-9' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, request_id: 'ignored' }),
    })
    expect(((await res.body.json()) as { id: string }).id).toBe('chatcmpl-trace-9')
  })
})
