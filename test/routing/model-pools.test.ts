import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { metricValue, postJson, promptOf, scrape, startFleet, type FleetStack } from './fleet-stack.js'

/**
 * A two-model fleet, two emulators per model (one of alpha's with a LoRA adapter), behind one gateway: every
 * request reaches a backend of its model's pool, an unknown model is vLLM's 404 before anything is queued, a
 * request naming no model gets the first backend's first model, and /v1/models lists the union.
 */
describe('model pools', () => {
  let fleet: FleetStack
  const pools: Record<string, string[]> = { alpha: ['a1', 'a2'], 'alpha-sql': ['a2'], beta: ['b1', 'b2'] }
  beforeAll(async () => {
    fleet = await startFleet({
      sims: [
        { name: 'a1', model: 'alpha', maxModelLen: 2048 },
        { name: 'b1', model: 'beta', maxModelLen: 4096 },
        { name: 'a2', model: 'alpha', maxModelLen: 2048, loraModules: [{ name: 'alpha-sql', path: '/adapters/sql' }] },
        { name: 'b2', model: 'beta', maxModelLen: 4096 },
      ],
    })
  })
  afterAll(async () => {
    await fleet?.close()
  })

  const chat = (model: string | undefined, i: number) =>
    postJson(`${fleet.url}/v1/chat/completions`, {
      ...(model === undefined ? {} : { model }),
      messages: [{ role: 'user', content: promptOf(20 + (i % 7) * 30) }],
      max_tokens: 8,
    })

  it('never sends a request to a backend outside its model pool', async () => {
    const models = ['alpha', 'beta', 'alpha-sql']
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => chat(models[i % 3], i)))
    const used = new Map<string, Set<string>>()
    results.forEach((r, i) => {
      const model = models[i % 3] as string
      expect(r.status).toBe(200)
      expect(JSON.parse(r.text).model).toBe(model)
      const backend = String(r.headers['x-kvgate-backend'])
      expect(pools[model]).toContain(backend)
      used.set(model, (used.get(model) ?? new Set()).add(backend))
    })
    // Both replicas of each base model took some of its requests.
    expect([...(used.get('alpha') ?? [])].sort()).toEqual(['a1', 'a2'])
    expect([...(used.get('beta') ?? [])].sort()).toEqual(['b1', 'b2'])
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)
    const metrics = await scrape(fleet.gateway.adminUrl())
    expect(metricValue(metrics, 'kvgate_pool_backends{model="alpha"}')).toBe(2)
    expect(metricValue(metrics, 'kvgate_pool_backends{model="alpha-sql"}')).toBe(1)
    expect(metricValue(metrics, 'kvgate_model_admissions_total{model="beta"}')).toBe(20)
  })

  it('answers an unknown model with vLLM’s 404 before queueing it', async () => {
    const before = await scrape(fleet.gateway.adminUrl())
    const r = await chat('gamma', 0)
    expect(r.status).toBe(404)
    expect(JSON.parse(r.text)).toEqual({
      error: {
        message: 'The model `gamma` does not exist.',
        type: 'NotFoundError',
        param: 'model',
        code: 'model_not_found',
      },
    })
    const after = await scrape(fleet.gateway.adminUrl())
    // It never waited in the queue: no queue-wait observation, nothing reserved, counted as a bad request.
    const waited = (text: string) => metricValue(text, 'kvgate_queue_wait_seconds_count{result="rejected"}') ?? 0
    expect(waited(after)).toBe(waited(before))
    expect(fleet.gateway.queueDepth()).toBe(0)
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)
  })

  it('gives a request that names no model the first model the first backend lists, as vLLM would', async () => {
    const r = await chat(undefined, 1)
    expect(r.status).toBe(200)
    expect(JSON.parse(r.text).model).toBe('alpha')
    expect(pools['alpha']).toContain(String(r.headers['x-kvgate-backend']))
  })

  it('lists the union of the pools on /v1/models, once per model, as the backends wrote the cards', async () => {
    const response = await request(`${fleet.url}/v1/models`)
    expect(response.statusCode).toBe(200)
    const body = (await response.body.json()) as { object: string; data: Record<string, unknown>[] }
    expect(body.object).toBe('list')
    expect(body.data.map((m) => m['id'])).toEqual(['alpha', 'beta', 'alpha-sql'])
    expect(body.data[0]).toMatchObject({ object: 'model', owned_by: 'vllm', root: 'alpha', max_model_len: 2048 })
    expect(body.data[2]).toMatchObject({ root: '/adapters/sql', parent: 'alpha', max_model_len: null })
  })

  it('checks an adapter’s context against its base model’s length', async () => {
    const r = await postJson(`${fleet.url}/v1/chat/completions`, {
      model: 'alpha-sql',
      messages: [{ role: 'user', content: promptOf(3000) }],
    })
    expect(r.status).toBe(400)
    expect(JSON.parse(r.text).error).toMatchObject({ param: 'input_tokens', code: 'context_length_exceeded' })
  })
})
