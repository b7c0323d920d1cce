import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, promptOf, scrape } from './support.js'

/**
 * Which models the emulator serves: vLLM's `--served-model-name` aliases of one model, kvgate's
 * `--models a,b` distinct models on one KV pool, and `--lora-modules` adapters; `/v1/models` lists them as
 * vLLM does, an unknown model is vLLM's 404, and metrics carry `model_name` per model.
 */
type Card = { id: string; root: string; parent: string | null; max_model_len: number | null; object: string }

async function models(sim: SimHandle): Promise<Card[]> {
  return ((await (await request(`${sim.url}/v1/models`)).body.json()) as { data: Card[] }).data
}

describe('served models', () => {
  let sim: SimHandle | undefined
  afterEach(async () => {
    await sim?.close()
    sim = undefined
  })

  it('--served-model-name: aliases of one model; responses and metrics carry the first', async () => {
    sim = await startSim({ model: 'org/llama-8b', servedModelName: ['llama', 'chat'], maxModelLen: 2048, speed: 100 })
    expect(
      (await models(sim)).map(({ id, root, parent, max_model_len }) => ({ id, root, parent, max_model_len })),
    ).toEqual([
      { id: 'llama', root: 'org/llama-8b', parent: null, max_model_len: 2048 },
      { id: 'chat', root: 'org/llama-8b', parent: null, max_model_len: 2048 },
    ])
    const viaAlias = await postJson(`${sim.url}/v1/completions`, { model: 'chat', prompt: 'hi', max_tokens: 2 })
    expect(viaAlias.status).toBe(200)
    expect(viaAlias.json.model).toBe('llama')
    // The model path itself is not a served name once aliases are given (as vLLM).
    expect((await postJson(`${sim.url}/v1/completions`, { model: 'org/llama-8b', prompt: 'hi' })).status).toBe(404)
    const families = await scrape(sim.url)
    expect(families.get('vllm:prompt_tokens_total')?.metrics.map((m) => m.labels?.['model_name'])).toEqual(['llama'])
  })

  it("answers a model it does not serve with vLLM's 404 body", async () => {
    sim = await startSim({ model: 'llama', speed: 100 })
    for (const route of ['/v1/completions', '/v1/chat/completions', '/tokenize']) {
      const body = route === '/v1/chat/completions' ? { messages: [{ role: 'user', content: 'x' }] } : { prompt: 'x' }
      const res = await postJson(`${sim.url}${route}`, { ...body, model: 'gpt-4' })
      expect(res.status).toBe(404)
      expect(res.json).toEqual({
        error: { message: 'The model `gpt-4` does not exist.', type: 'NotFoundError', param: 'model', code: 404 },
      })
    }
    expect(sim.engineState()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0 })
  })

  it('--models a,b: distinct models on one KV pool, each with its own series and prefix cache', async () => {
    sim = await startSim({ models: ['alpha', 'beta'], numGpuBlocks: 512, speed: 100 })
    expect((await models(sim)).map((c) => [c.id, c.root, c.max_model_len])).toEqual([
      ['alpha', 'alpha', 511 * 16],
      ['beta', 'beta', 511 * 16],
    ])
    const prompt = promptOf(320, 9)
    for (const model of ['alpha', 'beta']) {
      const res = await postJson(`${sim.url}/v1/completions`, { model, prompt, max_tokens: 3, ignore_eos: true })
      expect(res.json.model).toBe(model)
    }
    const families = await scrape(sim.url)
    const byModel = (name: string): Record<string, number> =>
      Object.fromEntries(
        (families.get(name)?.metrics ?? []).map((m) => [m.labels?.['model_name'] ?? '', Number(m.value)]),
      )
    expect(byModel('vllm:prompt_tokens_total')).toEqual({ alpha: 320, beta: 320 })
    expect(byModel('vllm:generation_tokens_total')).toEqual({ alpha: 3, beta: 3 })
    expect(byModel('vllm:num_requests_running')).toEqual({ alpha: 0, beta: 0 })
    // One pool: the same usage under each name, one cache config, engine-wide counters once.
    expect(Object.keys(byModel('vllm:kv_cache_usage_perc'))).toEqual(['alpha', 'beta'])
    expect(families.get('vllm:cache_config_info')?.metrics).toHaveLength(1)
    expect(byModel('vllm:num_preemptions_total')).toEqual({ alpha: 0 })
    // The same prompt under another model is not a prefix-cache hit: its KV is another model's.
    expect(byModel('vllm:prefix_cache_hits_total')).toEqual({ alpha: 0 })
    expect(byModel('vllm:prefix_cache_queries_total')).toEqual({ alpha: 640 })
    // Under the same model it is: every full block but the last, which must be computed for logits.
    await postJson(`${sim.url}/v1/completions`, { model: 'beta', prompt, max_tokens: 1 })
    const again = await scrape(sim.url)
    expect(Number(again.get('vllm:prefix_cache_hits_total')?.metrics[0]?.value)).toBe(304)
  })

  it('--lora-modules: adapters listed with root and parent, answered under their own name', async () => {
    sim = await startSim({
      models: ['base-a', 'base-b'],
      loraModules: [
        { name: 'sql', path: '/adapters/sql' },
        { name: 'legal', path: '/adapters/legal', baseModelName: 'base-b' },
      ],
      maxModelLen: 1024,
      speed: 100,
    })
    const cards = await models(sim)
    expect(cards.map(({ id, root, parent, max_model_len }) => ({ id, root, parent, max_model_len }))).toEqual([
      { id: 'base-a', root: 'base-a', parent: null, max_model_len: 1024 },
      { id: 'base-b', root: 'base-b', parent: null, max_model_len: 1024 },
      // vLLM gives an adapter's card its path as root, its base as parent, and no context length.
      { id: 'sql', root: '/adapters/sql', parent: 'base-a', max_model_len: null },
      { id: 'legal', root: '/adapters/legal', parent: 'base-b', max_model_len: null },
    ])
    const res = await postJson(`${sim.url}/v1/chat/completions`, {
      model: 'legal',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 2,
    })
    expect(res.json.model).toBe('legal')
    // Counted under its base model, as vLLM labels metrics with the served model.
    const families = await scrape(sim.url)
    const generated = families
      .get('vllm:generation_tokens_total')
      ?.metrics.find((m) => m.labels?.['model_name'] === 'base-b')
    expect(Number(generated?.value)).toBe(2)
  })

  it('refuses combinations it cannot serve, naming them', async () => {
    await expect(startSim({ models: ['a'], servedModelName: ['b'] })).rejects.toThrow(/models and servedModelName/)
    await expect(startSim({ models: ['a'], loraModules: [{ name: 'a', path: '/x' }] })).rejects.toThrow(
      /"a" is already a served model name/,
    )
    await expect(
      startSim({ model: 'a', loraModules: [{ name: 'l', path: '/x', baseModelName: 'zzz' }] }),
    ).rejects.toThrow(/base model "zzz", not served/)
  })
})
