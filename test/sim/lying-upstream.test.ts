import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, scrape, sampleValue } from './support.js'

/**
 * Faults for the gateway's distrust of its upstream: `/metrics` that lies (impossible values, an absurd
 * capacity), floods, or answers while the engine is dead, and errors that come back as a proxy's HTML page.
 * Each can be set at start and switched at run time through `POST /sim/faults`.
 */
async function metricsText(sim: SimHandle): Promise<{ status: number; text: string }> {
  const res = await request(`${sim.url}/metrics`)
  return { status: res.statusCode, text: await res.body.text() }
}

const usageLine = (text: string): string | undefined =>
  text.split('\n').find((line) => line.startsWith('vllm:kv_cache_usage_perc{'))

describe('a lying upstream', () => {
  let sim: SimHandle | undefined
  afterEach(async () => {
    await sim?.close()
    sim = undefined
  })

  it('reports overridden metric values: NaN, negative, infinite, in every label set', async () => {
    sim = await startSim({ speed: 100, faults: { metricsOverrides: { 'vllm:kv_cache_usage_perc': 'NaN' } } })
    expect(usageLine((await metricsText(sim)).text)).toBe(
      'vllm:kv_cache_usage_perc{engine="0",model_name="kvgate-sim"} NaN',
    )
    for (const [value, shown] of [
      [-3, '-3.0'],
      ['+Inf', '+Inf'],
      ['-Inf', '-Inf'],
      [0.25, '0.25'],
    ] as const) {
      const set = await postJson(`${sim.url}/sim/faults`, { metricsOverrides: { 'vllm:kv_cache_usage_perc': value } })
      expect(set.status).toBe(200)
      expect(usageLine((await metricsText(sim)).text)).toBe(
        `vllm:kv_cache_usage_perc{engine="0",model_name="kvgate-sim"} ${shown}`,
      )
    }
    // Counters too, and a map replaces the previous one; {} tells the truth again.
    await postJson(`${sim.url}/sim/faults`, { metricsOverrides: { 'vllm:prompt_tokens_total': 1e9 } })
    const families = await scrape(sim.url)
    expect(sampleValue(families, 'vllm:prompt_tokens_total')).toBe(1e9)
    expect(sampleValue(families, 'vllm:kv_cache_usage_perc')).toBe(0)
    await postJson(`${sim.url}/sim/faults`, { metricsOverrides: {} })
    expect(sampleValue(await scrape(sim.url), 'vllm:prompt_tokens_total')).toBe(0)
  })

  it('reports an overridden vllm:cache_config_info label while the engine keeps its real size', async () => {
    sim = await startSim({ speed: 100, numGpuBlocks: 300, faults: { cacheConfigLabels: { num_gpu_blocks: '1e15' } } })
    const info = (await scrape(sim.url)).get('vllm:cache_config_info')?.metrics[0]?.labels
    expect(info).toMatchObject({ num_gpu_blocks: '1e15', block_size: '16' })
    expect(sim.engineState().numGpuBlocks).toBe(300)
    sim.setFaults({ cacheConfigLabels: {} })
    expect((await scrape(sim.url)).get('vllm:cache_config_info')?.metrics[0]?.labels?.['num_gpu_blocks']).toBe('300')
  })

  it('floods /metrics to the size asked, still valid exposition', async () => {
    sim = await startSim({ speed: 100, faults: { metricsPadBytes: 5_000_000 } })
    const { status, text } = await metricsText(sim)
    expect(status).toBe(200)
    expect(Buffer.byteLength(text)).toBe(5_000_000)
    expect(text.endsWith('\n')).toBe(true)
    const names = (parsePrometheusTextFormat(text) as Array<{ name: string }>).map((f) => f.name)
    expect(names).toContain('vllm:kv_cache_usage_perc')
    sim.setFaults({ metricsPadBytes: 0 })
    expect(Buffer.byteLength((await metricsText(sim)).text)).toBeLessThan(100_000)
  })

  it('a dead engine still answers /metrics, with /health 503 and generation 500', async () => {
    sim = await startSim({ speed: 100, faults: { engineDead: true } })
    const { status, text } = await metricsText(sim)
    expect(status).toBe(200)
    expect(usageLine(text)).toBeDefined()
    expect((await request(`${sim.url}/health`)).statusCode).toBe(503)
    const generation = await postJson(`${sim.url}/v1/completions`, { prompt: 'hi' })
    expect(generation.status).toBe(500)
    expect(generation.json.error).toMatchObject({ type: 'InternalServerError', code: 500 })
  })

  it('answers API requests 502 with an HTML page, as a proxy in front of a dead vLLM, but not its polls', async () => {
    sim = await startSim({ speed: 100, faults: { badGatewayHtmlRate: 1 } })
    for (const [method, path] of [
      ['POST', '/v1/completions'],
      ['POST', '/v1/chat/completions'],
      ['GET', '/v1/models'],
      ['GET', '/version'],
    ] as const) {
      const res = await request(`${sim.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        ...(method === 'POST'
          ? { body: JSON.stringify({ prompt: 'hi', messages: [{ role: 'user', content: 'x' }] }) }
          : {}),
      })
      expect(res.statusCode, path).toBe(502)
      expect(res.headers['content-type']).toMatch(/^text\/html/)
      expect(await res.body.text()).toContain('<title>502 Bad Gateway</title>')
    }
    expect((await request(`${sim.url}/health`)).statusCode).toBe(200)
    expect((await metricsText(sim)).status).toBe(200)
    expect(sim.engineState()).toMatchObject({ running: 0, waiting: 0 })
    sim.setFaults({ badGatewayHtmlRate: 0 })
    expect((await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 1 })).status).toBe(200)
  })

  it('refuses bad values of the new faults with a 400 naming the field', async () => {
    sim = await startSim({ speed: 100 })
    const cases: Array<[Record<string, unknown>, string]> = [
      [
        { metricsOverrides: { 'vllm:kv_cache_usage_perc': 'lots' } },
        'faults.metricsOverrides.vllm:kv_cache_usage_perc',
      ],
      [{ metricsOverrides: { 'not a name': 1 } }, 'faults.metricsOverrides'],
      [{ cacheConfigLabels: { num_gpu_blocks: 1e15 } }, 'faults.cacheConfigLabels.num_gpu_blocks'],
      [{ metricsPadBytes: -1 }, 'faults.metricsPadBytes'],
      [{ metricsPadBytes: 2 ** 31 }, 'faults.metricsPadBytes'],
      [{ badGatewayHtmlRate: 1.5 }, 'faults.badGatewayHtmlRate'],
    ]
    for (const [body, param] of cases) {
      const res = await postJson(`${sim.url}/sim/faults`, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.json.error.param).toBe(param)
    }
    // Nothing of the refused changes stuck.
    expect((await request(`${sim.url}/sim/faults`).then((r) => r.body.json())) as object).toMatchObject({
      metricsOverrides: {},
      cacheConfigLabels: {},
      metricsPadBytes: 0,
      badGatewayHtmlRate: 0,
    })
    await expect(startSim({ faults: { metricsPadBytes: -5 } })).rejects.toThrow(/faults\.metricsPadBytes/)
  })
})
