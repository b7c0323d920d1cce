import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, promptOf } from './support.js'

/** Errors before a stream starts: a real status and vLLM's `{"error": {message, type, param, code}}`. */
describe('request errors', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ model: 'llama', maxModelLen: 1024, speed: 100 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('a prompt at or over max_model_len is a 400 with param input_tokens', async () => {
    const { status, json } = await postJson(`${sim.url}/v1/completions`, { prompt: promptOf(1024), stream: true })
    expect(status).toBe(400)
    expect(json).toEqual({
      error: {
        message:
          "This model's maximum context length is 1024 tokens. However, your request has 1024 input tokens. Please reduce the length of the input messages.",
        type: 'BadRequestError',
        param: 'input_tokens',
        code: 400,
      },
    })
    const chat = await postJson(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: promptOf(1100) }],
    })
    expect(chat.status).toBe(400)
    expect(chat.json.error.param).toBe('input_tokens')
  })

  it('max_tokens beyond the context left is a 400 with param max_tokens', async () => {
    const { status, json } = await postJson(`${sim.url}/v1/completions`, { prompt: promptOf(1000), max_tokens: 100 })
    expect(status).toBe(400)
    expect(json.error).toMatchObject({ type: 'BadRequestError', param: 'max_tokens', code: 400 })
    expect(json.error.message).toContain("'max_tokens' or 'max_completion_tokens' is too large: 100")
  })

  it('min_tokens above max_tokens is a 400', async () => {
    const { status, json } = await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 5, min_tokens: 6 })
    expect(status).toBe(400)
    expect(json.error.param).toBe('min_tokens')
  })

  it('bad JSON and missing fields are 400 in the same shape', async () => {
    const res = await request(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"messages": [',
    })
    expect(res.statusCode).toBe(400)
    const body = (await res.body.json()) as { error: Record<string, unknown> }
    expect(body.error).toEqual({ message: expect.any(String), type: 'BadRequestError', param: null, code: 400 })

    const missing = await postJson(`${sim.url}/v1/chat/completions`, { model: 'llama' })
    expect(missing.status).toBe(400)
    expect(missing.json.error.message).toContain('messages')
    const wrongType = await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 'many' })
    expect(wrongType.status).toBe(400)
    expect(wrongType.json.error.type).toBe('BadRequestError')
  })

  it('stream_options without stream, and a priority under FCFS scheduling, are 400s as in vLLM', async () => {
    const options = await postJson(`${sim.url}/v1/completions`, {
      prompt: 'hi',
      stream_options: { include_usage: true },
    })
    expect(options.status).toBe(400)
    expect(options.json.error.message).toBe('Stream options can only be defined when `stream=True`.')
    const priority = await postJson(`${sim.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      priority: 5,
    })
    expect(priority.status).toBe(400)
    expect(priority.json.error.param).toBe('priority')
    const zero = await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 1, priority: 0 })
    expect(zero.status).toBe(200)
  })

  it('an unknown model is a 404', async () => {
    const { status, json } = await postJson(`${sim.url}/v1/completions`, { model: 'gpt-9', prompt: 'hi' })
    expect(status).toBe(404)
    expect(json).toEqual({
      error: { message: 'The model `gpt-9` does not exist.', type: 'NotFoundError', param: 'model', code: 404 },
    })
  })
})
