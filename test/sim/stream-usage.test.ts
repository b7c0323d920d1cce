import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { stream } from './support.js'

/**
 * The usage vLLM's stream carries (`serving_chat.py` / `serving_completion.py`): with continuous_usage_stats a
 * choice's chunks count that choice's own tokens (`previous_num_tokens[i]`), the final chunk sums every
 * choice; `include_usage` is read as sent, so an explicit null turns the usage chunk off.
 */
describe('stream usage', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ model: 'llama', speed: 100 })
  })
  afterAll(async () => {
    await sim.close()
  })

  type Usage = { prompt_tokens: number; completion_tokens: number; total_tokens: number }
  type Event = { choices: Array<{ index: number; delta?: { role?: string } }>; usage?: Usage }

  for (const [kind, path, prompt] of [
    ['chat', '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }],
    ['completions', '/v1/completions', { prompt: 'hi there' }],
  ] as const) {
    it(`${kind}: with n = 2, continuous usage counts each choice's own tokens; the final chunk sums them`, async () => {
      const result = await stream(`${sim.url}${path}`, {
        ...prompt,
        n: 2,
        max_tokens: 3,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true, continuous_usage_stats: true },
      })
      expect(result.done).toBe(true)
      const events = result.events as Event[]
      const final = events.at(-1)!
      expect(final.choices).toEqual([])
      expect(final.usage?.completion_tokens).toBe(6)
      for (const index of [0, 1]) {
        const counts = events.filter((e) => e.choices[0]?.index === index).map((e) => e.usage!.completion_tokens)
        expect(counts).toEqual(kind === 'chat' ? [0, 1, 2, 3] : [1, 2, 3])
      }
    })
  }

  it('an explicit include_usage: null sends no usage chunk, as vLLM reads the field as sent', async () => {
    const result = await stream(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: null },
    })
    expect(result.done).toBe(true)
    expect(result.events.some((e) => 'usage' in e)).toBe(false)
    // Absent, it defaults to true.
    const absent = await stream(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
      ignore_eos: true,
      stream: true,
      stream_options: {},
    })
    expect(absent.events.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 2 } })
  })
})
