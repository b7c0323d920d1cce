import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/core/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf, stream } from './support.js'

/** vLLM's SSE format, field by field, read with undici (the raw bytes, not an SDK's interpretation). */
describe('streaming format', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ model: 'llama', speed: 100 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('chat: role chunk, one content chunk per token, finish on the last token, usage chunk, [DONE]', async () => {
    const result = await stream(`${sim.url}/v1/chat/completions`, {
      model: 'llama',
      messages: [{ role: 'user', content: 'hello there' }],
      max_tokens: 4,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    })
    expect(result.status).toBe(200)
    expect(result.done).toBe(true)
    expect(result.raw.endsWith('data: [DONE]\n\n')).toBe(true)
    const [role, ...rest] = result.events
    const id = role!['id'] as string
    expect(id).toMatch(/^chatcmpl-[0-9a-f]{32}$/)
    expect(role).toEqual({
      id,
      object: 'chat.completion.chunk',
      created: expect.any(Number),
      model: 'llama',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    })
    const content = rest.slice(0, 4)
    for (const [i, chunk] of content.entries()) {
      expect(chunk['id']).toBe(id)
      expect(chunk['object']).toBe('chat.completion.chunk')
      expect(chunk['created']).toBe(role!['created'])
      expect(chunk['usage']).toBeUndefined()
      const choice = (chunk['choices'] as Array<Record<string, unknown>>)[0]!
      expect(Object.keys(choice['delta'] as object)).toEqual(['content'])
      expect((choice['delta'] as { content: string }).content).toMatch(/^ [a-z]+$/)
      if (i < 3) expect(choice).toEqual({ index: 0, delta: choice['delta'], logprobs: null, finish_reason: null })
      else
        expect(choice).toEqual({
          index: 0,
          delta: choice['delta'],
          logprobs: null,
          finish_reason: 'length',
          stop_reason: null,
        })
    }
    expect(rest[4]).toEqual({
      id,
      object: 'chat.completion.chunk',
      created: role!['created'],
      model: 'llama',
      choices: [],
      usage: { prompt_tokens: 4, total_tokens: 8, completion_tokens: 4 },
    })
    expect(rest).toHaveLength(5)
  })

  it('chat: no usage chunk without stream_options; `stream_options: {}` turns it on', async () => {
    const body = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ignore_eos: true, stream: true }
    const without = await stream(`${sim.url}/v1/chat/completions`, body)
    expect(without.events.some((e) => 'usage' in e)).toBe(false)
    expect(without.events).toHaveLength(3)
    const empty = await stream(`${sim.url}/v1/chat/completions`, { ...body, stream_options: {} })
    expect(empty.events.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    })
    const off = await stream(`${sim.url}/v1/chat/completions`, { ...body, stream_options: { include_usage: false } })
    expect(off.events.some((e) => 'usage' in e)).toBe(false)
  })

  it('chat: continuous_usage_stats puts cumulative usage on every chunk', async () => {
    const result = await stream(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    })
    const completions = result.events.map((e) => (e['usage'] as { completion_tokens: number }).completion_tokens)
    expect(completions).toEqual([0, 1, 2, 3, 3])
    for (const event of result.events) {
      const usage = event['usage'] as { prompt_tokens: number; completion_tokens: number; total_tokens: number }
      expect(usage.prompt_tokens).toBe(3)
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
    }
    // As in vLLM, continuous usage only applies when usage is included at all.
    const off = await stream(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: false, continuous_usage_stats: true },
    })
    expect(off.events.some((e) => 'usage' in e)).toBe(false)
  })

  it('completions: cmpl- id, text_completion chunks with text and stop_reason, no role chunk', async () => {
    const result = await stream(`${sim.url}/v1/completions`, {
      model: 'llama',
      prompt: promptOf(10),
      max_tokens: 3,
      ignore_eos: true,
      stream: true,
      stream_options: {},
    })
    expect(result.done).toBe(true)
    expect(result.events).toHaveLength(4)
    const id = result.events[0]!['id'] as string
    expect(id).toMatch(/^cmpl-[0-9a-f]{32}$/)
    for (const [i, chunk] of result.events.slice(0, 3).entries()) {
      expect(chunk).toEqual({
        id,
        object: 'text_completion',
        created: expect.any(Number),
        model: 'llama',
        choices: [
          {
            index: 0,
            text: expect.stringMatching(/^ [a-z]+$/),
            logprobs: null,
            finish_reason: i === 2 ? 'length' : null,
            stop_reason: null,
          },
        ],
      })
    }
    expect(result.events[3]).toEqual({
      id,
      object: 'text_completion',
      created: result.events[0]!['created'],
      model: 'llama',
      choices: [],
      usage: { prompt_tokens: 10, total_tokens: 13, completion_tokens: 3 },
    })
  })

  it('sends the 200 and headers before the first token, while the request still waits', async () => {
    const clock = createManualClock()
    const frozen = await startSim({}, { clock })
    try {
      // The engine never steps (the clock is not advanced), yet the headers arrive.
      const res = await request(`${frozen.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'hi', max_tokens: 2, stream: true }),
      })
      expect(res.statusCode).toBe(200)
      expect(frozen.engineState().waiting).toBe(1)
      clock.advance(1000)
      expect(await res.body.text()).toContain('data: [DONE]')
    } finally {
      await frozen.close()
    }
  })

  it('answers with text/event-stream', async () => {
    const res = await fetch(`${sim.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hi', max_tokens: 1, stream: true }),
    })
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    await res.text()
  })
})
