import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EMULATED_VLLM_VERSION, startSim, type SimHandle } from '../../src/sim/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { postJson, promptOf } from './support.js'

/** The non-generation routes a gateway and its poller touch. */
describe('utility endpoints', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ model: 'llama', maxModelLen: 4096, speed: 100 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('GET /health is 200 with an empty body; /version names the vLLM release', async () => {
    const health = await request(`${sim.url}/health`)
    expect(health.statusCode).toBe(200)
    expect(await health.body.text()).toBe('')
    const version = await request(`${sim.url}/version`)
    expect(await version.body.json()).toEqual({ version: EMULATED_VLLM_VERSION })
  })

  it('GET /v1/models lists the model with its context length', async () => {
    const res = await request(`${sim.url}/v1/models`)
    const body = (await res.body.json()) as { object: string; data: Array<Record<string, unknown>> }
    expect(body.object).toBe('list')
    expect(body.data).toHaveLength(1)
    expect(body.data[0]).toMatchObject({
      id: 'llama',
      object: 'model',
      owned_by: 'vllm',
      root: 'llama',
      max_model_len: 4096,
    })
  })

  it('/tokenize counts as the shared token counter and as the generation endpoints do', async () => {
    const prompt = promptOf(123)
    const tokenized = await postJson(`${sim.url}/tokenize`, { model: 'llama', prompt })
    expect(tokenized.json.count).toBe(123)
    expect(tokenized.json.max_model_len).toBe(4096)
    expect(tokenized.json.tokens).toEqual(createWordPieceTokenCounter().encode(prompt))
    const generated = await postJson(`${sim.url}/v1/completions`, { prompt, max_tokens: 1 })
    expect(generated.json.usage.prompt_tokens).toBe(123)

    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: prompt },
    ]
    const chat = await postJson(`${sim.url}/tokenize`, { messages })
    expect(chat.json.count).toBe(createWordPieceTokenCounter().countChat(messages))
    const chatGenerated = await postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 1 })
    expect(chatGenerated.json.usage.prompt_tokens).toBe(chat.json.count)
  })

  it('takes a completion prompt as text, a one-element list, or token ids', async () => {
    const ids = (await postJson(`${sim.url}/tokenize`, { prompt: promptOf(40) })).json.tokens as number[]
    for (const prompt of [promptOf(40), [promptOf(40)], ids, [ids]]) {
      const { status, json } = await postJson(`${sim.url}/v1/completions`, { prompt, max_tokens: 1 })
      expect(status).toBe(200)
      expect(json.usage.prompt_tokens).toBe(40)
    }
    expect((await postJson(`${sim.url}/v1/completions`, { prompt: ['a', 'b'] })).status).toBe(400)
  })

  it('/detokenize inverts /tokenize', async () => {
    const prompt = ' the cache is full, try again'
    const { json } = await postJson(`${sim.url}/tokenize`, { prompt })
    const back = await postJson(`${sim.url}/detokenize`, { tokens: json.tokens })
    expect(back.json).toEqual({ prompt })
    const bad = await postJson(`${sim.url}/detokenize`, { tokens: 'abc' })
    expect(bad.status).toBe(400)
  })

  it('an unknown route is a 404', async () => {
    expect((await request(`${sim.url}/v1/nothing`)).statusCode).toBe(404)
  })
})
