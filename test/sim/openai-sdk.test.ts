import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf } from './support.js'

/** The official SDK as a client: if it reads our streams and errors, real applications will too. */
describe('openai SDK against the emulator', () => {
  let sim: SimHandle
  let client: OpenAI
  beforeAll(async () => {
    sim = await startSim({ model: 'llama', speed: 100 })
    client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('streams a chat completion with usage', async () => {
    const chunks = await client.chat.completions.create({
      model: 'llama',
      messages: [{ role: 'user', content: 'tell me a story' }],
      max_completion_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
      // vLLM's extra sampling parameter; the SDK passes unknown fields through.
      ...({ ignore_eos: true } as object),
    })
    let text = ''
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | null | undefined
    let contentChunks = 0
    for await (const chunk of chunks) {
      const choice = chunk.choices[0]
      if (choice?.delta.content) {
        text += choice.delta.content
        contentChunks++
      }
      if (choice?.finish_reason) finish = choice.finish_reason
      if (chunk.usage) usage = chunk.usage
    }
    expect(contentChunks).toBe(12)
    expect(text.trim().split(' ')).toHaveLength(12)
    expect(finish).toBe('length')
    expect(usage).toEqual({ prompt_tokens: 6, completion_tokens: 12, total_tokens: 18 })
  })

  it('returns a non-streaming chat completion', async () => {
    const completion = await client.chat.completions.create({
      model: 'llama',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      max_tokens: 5,
      ...({ ignore_eos: true } as object),
    })
    expect(completion.object).toBe('chat.completion')
    expect(completion.id).toMatch(/^chatcmpl-/)
    expect(completion.choices[0]?.message.role).toBe('assistant')
    expect(completion.choices[0]?.finish_reason).toBe('length')
    expect(completion.usage).toMatchObject({ prompt_tokens: 6, completion_tokens: 5, total_tokens: 11 })
    expect(completion.choices[0]?.message.content?.trim().split(' ')).toHaveLength(5)
  })

  it('streams and returns legacy completions', async () => {
    const stream = await client.completions.create({
      model: 'llama',
      prompt: promptOf(20),
      max_tokens: 7,
      stream: true,
      ...({ ignore_eos: true } as object),
    })
    let pieces = 0
    for await (const chunk of stream) if (chunk.choices[0]?.text) pieces++
    expect(pieces).toBe(7)
    const completion = await client.completions.create({
      model: 'llama',
      prompt: promptOf(20),
      max_tokens: 3,
      ...({ ignore_eos: true } as object),
    })
    expect(completion.object).toBe('text_completion')
    expect(completion.usage).toMatchObject({ prompt_tokens: 20, completion_tokens: 3, total_tokens: 23 })
  })

  it('surfaces a too-long prompt as BadRequestError with param input_tokens', async () => {
    const attempt = client.completions.create({ model: 'llama', prompt: promptOf(9000) })
    await expect(attempt).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    await attempt.catch((err: InstanceType<typeof OpenAI.BadRequestError>) => {
      expect(err.status).toBe(400)
      expect(err.param).toBe('input_tokens')
    })
  })

  it('lists the served model', async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toEqual(['llama'])
    expect(models.data[0]?.owned_by).toBe('vllm')
  })
})
