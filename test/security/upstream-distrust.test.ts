import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway } from '../../src/gateway/index.js'
import { type FaultConfig, startSim } from '../../src/sim/index.js'
import { ALICE, chat, type GuardedStack, metric, servesNormally, startGuardedStack, until } from './support.js'

const NO_BACKEND = {
  error: {
    message: 'No backend can serve requests: every backend is down or its metrics are stale',
    type: 'service_unavailable',
    param: null,
    code: 'no_backend_available',
  },
}

/** Lies the emulator can tell; each must take the backend out of admission, not read as an empty cache. */
const LIES: { name: string; faults: Partial<FaultConfig>; fault: string; says: string }[] = [
  {
    name: 'NaN usage',
    faults: { metricsOverrides: { 'vllm:kv_cache_usage_perc': 'NaN' } },
    fault: 'usage_out_of_range',
    says: 'vllm:kv_cache_usage_perc is NaN, outside [0, 1]',
  },
  {
    name: 'negative usage',
    faults: { metricsOverrides: { 'vllm:kv_cache_usage_perc': -3 } },
    fault: 'usage_out_of_range',
    says: 'vllm:kv_cache_usage_perc is -3, outside [0, 1]',
  },
  {
    name: 'infinite usage',
    faults: { metricsOverrides: { 'vllm:kv_cache_usage_perc': '-Inf' } },
    fault: 'usage_out_of_range',
    says: 'vllm:kv_cache_usage_perc is -Infinity, outside [0, 1]',
  },
  {
    name: '1e15 blocks',
    faults: { cacheConfigLabels: { num_gpu_blocks: '1e15' } },
    fault: 'capacity_inconsistent',
    says: 'cache_config_info has block_size="16", num_gpu_blocks="1e15"',
  },
  {
    name: 'a capacity above the sanity ceiling',
    faults: { cacheConfigLabels: { num_gpu_blocks: '1000000000000000' } },
    fault: 'capacity_above_ceiling',
    says: 'reported KV capacity 16000000000000000 tokens exceeds metricsPoll.maxCapacityTokens (100000000)',
  },
  {
    name: 'blocks that disagree with the override vLLM reports',
    faults: { cacheConfigLabels: { num_gpu_blocks_override: '999' } },
    fault: 'capacity_inconsistent',
    says: `cache_config_info's num_gpu_blocks (256) disagrees with its num_gpu_blocks_override ("999")`,
  },
  {
    name: 'a /metrics page above the size limit',
    faults: { metricsPadBytes: 300 * 1024 },
    fault: 'metrics_too_large',
    says: '/metrics is larger than metricsPoll.maxBodyBytes (262144)',
  },
]

describe('a semi-trusted upstream: lies in /metrics take the backend out of admission', () => {
  let stack: GuardedStack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  const unusable = (s: GuardedStack) => until(() => (s.gateway.backends()[0]?.usable === false ? true : undefined))
  const usable = (s: GuardedStack) => until(() => (s.gateway.backends()[0]?.usable === true ? true : undefined))

  it.each(LIES)('$name', async ({ faults, fault, says }) => {
    stack = await startGuardedStack({ config: { metricsPoll: { maxBodyBytes: 256 * 1024 } } })
    const current = stack
    current.sim.setFaults(faults)
    await unusable(current)
    expect(current.gateway.backends()[0]?.lastError).toBe(says)
    const refused = await request(`${current.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ALICE },
      body: JSON.stringify(chat()),
    })
    expect({ status: refused.statusCode, body: await refused.body.json() }).toEqual({ status: 503, body: NO_BACKEND })
    expect((await request(`${current.url}/health`)).statusCode).toBe(503)
    expect(
      await metric(current.adminUrl, `kvgate_backend_faults_total{backend="sim0",fault="${fault}"}`),
    ).toBeGreaterThan(0)
    // Logged once, when the backend left admission, with the reason.
    const logged = current.lines
      .map((line) => JSON.parse(line) as { msg: string; error?: string })
      .filter((r) => r.msg.startsWith('backend not usable'))
    expect(logged.map((r) => r.error)).toContain(says)

    current.sim.setFaults({ metricsOverrides: {}, cacheConfigLabels: {}, metricsPadBytes: 0 })
    await usable(current)
    await servesNormally(current)
  })

  it('takes a configured capacity above what the backend reports as a mismatch', async () => {
    const sim = await startSim({ numGpuBlocks: 256, logger: false })
    const other = await startSim({ numGpuBlocks: 256, logger: false })
    // Told it has 25× the KV the emulator reports (256 blocks × 16 = 4,096 tokens): admitting on it would
    // overfill the cache; a configured capacity below the reported one is the operator's choice and stands.
    const gateway = await createGateway({
      config: parseConfig({
        backends: [
          { url: sim.url, name: 'over', capacityTokens: 100_000 },
          { url: other.url, name: 'under', capacityTokens: 1_000 },
        ],
        metricsPoll: { intervalMs: 20 },
        healthCheck: { intervalMs: 200 },
      }),
      logger: false,
    })
    try {
      await gateway.listen({ port: 0, host: '127.0.0.1' })
      await until(() => (gateway.backends()[1]?.usable ? true : undefined))
      expect(gateway.backends()[0]).toMatchObject({
        usable: false,
        lastError: 'capacityTokens 100000 exceeds the 4096 tokens vllm:cache_config_info reports',
      })
      expect(gateway.backends()[1]).toMatchObject({ usable: true, capacityTokens: 1_000 })
    } finally {
      await gateway.close()
      await sim.close()
      await other.close()
    }
  })

  it('takes a backend whose engine is dead out of admission while its /metrics still answers', async () => {
    stack = await startGuardedStack({ config: { healthCheck: { intervalMs: 60_000 } } })
    const current = stack
    current.sim.setFaults({ engineDead: true })
    // The next admitted request fails (vLLM answers 500 with a dead engine); that failure checks health at
    // once, instead of waiting a minute for the next check, and the backend leaves admission.
    const failed = await request(`${current.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ALICE },
      body: JSON.stringify(chat()),
    })
    expect(failed.statusCode).toBe(500)
    expect(await failed.body.json()).toMatchObject({ error: { code: 'upstream_error', type: expect.any(String) } })
    await unusable(current)
    expect(current.gateway.backends()[0]).toMatchObject({
      usable: false,
      up: true, // /metrics still answers
      healthy: false,
      lastError: 'engine not healthy: /health answered 503',
    })
    const refused = await request(`${current.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ALICE },
      body: JSON.stringify(chat()),
    })
    expect({ status: refused.statusCode, body: await refused.body.json() }).toEqual({ status: 503, body: NO_BACKEND })
    expect(await metric(current.adminUrl, 'kvgate_backend_healthy{backend="sim0"}')).toBe(0)
    expect(
      await metric(current.adminUrl, 'kvgate_backend_faults_total{backend="sim0",fault="health_failed"}'),
    ).toBeGreaterThan(0)
    expect(current.gateway.ledgerReservedTokens()).toBe(0)
  })

  it("wraps an upstream's HTML error page in OpenAI's shape, on a generating and a pass-through route", async () => {
    stack = await startGuardedStack()
    const current = stack
    current.sim.setFaults({ badGatewayHtmlRate: 1 })
    const generated = await request(`${current.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ALICE },
      body: JSON.stringify(chat()),
    })
    expect(generated.headers['content-type']).toContain('application/json')
    expect({ status: generated.statusCode, body: await generated.body.json() }).toEqual({
      status: 502,
      body: {
        error: {
          message: 'The upstream server answered 502 with a text/html body that is not an error object.',
          type: 'server_error',
          param: null,
          code: 'upstream_error',
        },
      },
    })
    // A pass-through route (`/v1/models` is answered by kvgate from the pools, so `/version`).
    const models = await request(`${current.url}/version`, { headers: ALICE })
    expect({ status: models.statusCode, body: await models.body.json() }).toEqual({
      status: 502,
      body: {
        error: {
          message: 'The upstream server answered 502 with a text/html body that is not an error object.',
          type: 'server_error',
          param: null,
          code: 'upstream_error',
        },
      },
    })
    current.sim.setFaults({ badGatewayHtmlRate: 0 })
    // An unknown model is answered by the gateway before queueing (no pool serves it), in vLLM's words.
    const unknown = await request(`${current.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ALICE },
      body: JSON.stringify(chat('hi', { model: 'nope' })),
    })
    expect({ status: unknown.statusCode, body: await unknown.body.json() }).toEqual({
      status: 404,
      body: {
        error: {
          message: 'The model `nope` does not exist.',
          type: 'NotFoundError',
          param: 'model',
          code: 'model_not_found',
        },
      },
    })
    await servesNormally(current)
  })
})
