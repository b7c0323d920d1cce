import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createManualClock } from '../../src/core/index.js'
import { createBackendPool, readVllmMetrics, type BackendPool } from '../../src/upstream/index.js'

const labels = 'engine="0",model_name="llama"'
function vllmPage(opts: { usage: number; legacy?: boolean; generated?: number; blocks?: number }): string {
  const usageName = opts.legacy ? 'vllm:gpu_cache_usage_perc' : 'vllm:kv_cache_usage_perc'
  return [
    '# HELP vllm:num_requests_running Number of requests in model execution batches.',
    '# TYPE vllm:num_requests_running gauge',
    `vllm:num_requests_running{${labels}} 3.0`,
    `vllm:num_requests_waiting{${labels}} 1.0`,
    `# TYPE ${usageName} gauge`,
    `${usageName}{${labels}} ${opts.usage}`,
    `vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",num_cpu_blocks="None",num_gpu_blocks="${opts.blocks ?? 256}"} 1.0`,
    `vllm:prompt_tokens_total{${labels}} 1000.0`,
    `vllm:generation_tokens_total{${labels}} ${opts.generated ?? 0}`,
    `vllm:time_to_first_token_seconds_bucket{${labels},le="0.001"} 0.0`,
    `vllm:num_preemptions_total{${labels}} 0.0`,
    '',
  ].join('\n')
}

describe('vLLM metrics parsing', () => {
  it('reads usage, capacity from cache_config_info, queue lengths and counters', () => {
    expect(readVllmMetrics(vllmPage({ usage: 0.25, generated: 500 }))).toEqual({
      kvUsageRatio: 0.25,
      capacityTokens: 4096,
      blockSize: 16,
      running: 3,
      waiting: 1,
      promptTokensTotal: 1000,
      generationTokensTotal: 500,
      preemptionsTotal: 0,
    })
  })

  it('falls back to the pre-0.10 usage name and refuses a page without usage', () => {
    expect(readVllmMetrics(vllmPage({ usage: 0.5, legacy: true }))?.kvUsageRatio).toBe(0.5)
    expect(readVllmMetrics('# nothing here\nprocess_cpu_seconds_total 1.0\n')).toBeUndefined()
  })
})

describe('backend polling', () => {
  let server: Server | undefined
  let pool: BackendPool | undefined
  afterEach(async () => {
    await pool?.close()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
  })

  async function startMetricsServer(page: { body: string; status: number }): Promise<string> {
    server = createServer((req, res) => {
      res.writeHead(req.url === '/metrics' ? page.status : 404, { 'content-type': 'text/plain' })
      res.end(page.body)
    })
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  it('turns polls into capacity and usage, reconciles the ledger, and goes stale or down', async () => {
    const page = { body: vllmPage({ usage: 0.25, generated: 0 }), status: 200 }
    const url = await startMetricsServer(page)
    const clock = createManualClock()
    const marks: string[] = []
    const config = parseConfig({ backends: [{ url, name: 'gpu0' }], metricsPoll: { staleAfterMs: 500 } })
    let rounds = 0
    pool = createBackendPool({
      backends: config.backends,
      poll: config.metricsPoll,
      clock,
      reconciler: {
        beginPoll: (id) => {
          marks.push(`begin:${id}`)
          return id
        },
        completePoll: (mark) => void marks.push(`complete:${String(mark)}`),
      },
      onPollRound: () => rounds++,
    })
    expect(pool.capacities()).toEqual([{ id: 'gpu0', capacityTokens: 0, usedTokens: 0, usable: false, waiting: 0 }])

    await pool.pollOnce()
    expect(pool.capacities()).toEqual([
      { id: 'gpu0', capacityTokens: 4096, usedTokens: 1024, usable: true, waiting: 1 },
    ])
    expect(marks).toEqual(['begin:gpu0', 'complete:gpu0'])
    expect(rounds).toBe(1)
    expect(pool.pickForPassthrough()?.url).toBe(url)

    // Served tokens per minute from the counters' slope on the injected clock.
    clock.advance(400)
    page.body = vllmPage({ usage: 0.25, generated: 400 })
    await pool.pollOnce()
    expect(pool.servedTokensPerMinute()).toBeCloseTo(60_000, 5)

    clock.advance(501)
    expect(pool.states()[0]).toMatchObject({ usable: false, up: true, metricsAgeMs: 501 })
    expect(pool.pickForPassthrough()).toBeUndefined()

    page.status = 500
    await pool.pollOnce()
    expect(pool.states()[0]).toMatchObject({ usable: false, up: false, pollErrors: 1 })
    expect(marks.at(-1)).toBe('begin:gpu0') // a failed poll is never completed

    page.status = 200
    await pool.pollOnce()
    expect(pool.states()[0]?.usable).toBe(true)
  })

  it('uses a configured capacity over the one vLLM reports', async () => {
    const url = await startMetricsServer({ body: vllmPage({ usage: 0.5 }), status: 200 })
    const config = parseConfig({ backends: [{ url, capacityTokens: 1000 }] })
    pool = createBackendPool({ backends: config.backends, poll: config.metricsPoll, clock: createManualClock() })
    await pool.pollOnce()
    expect(pool.capacities()).toEqual([
      { id: 'vllm-0', capacityTokens: 1000, usedTokens: 500, usable: true, waiting: 1 },
    ])
  })

  it('stays out of admission, saying why, when vLLM exports no capacity and none is configured', async () => {
    const page = vllmPage({ usage: 0.1 }).replace(/^vllm:cache_config_info.*$/m, '')
    const url = await startMetricsServer({ body: page, status: 200 })
    const config = parseConfig({ backends: [{ url }] })
    pool = createBackendPool({ backends: config.backends, poll: config.metricsPoll, clock: createManualClock() })
    await pool.pollOnce()
    expect(pool.states()[0]).toMatchObject({ up: true, usable: false, capacityTokens: 0 })
    expect(pool.states()[0]?.lastError).toContain('capacityTokens')
  })

  it('marks an unreachable backend down', async () => {
    const config = parseConfig({ backends: [{ url: 'http://127.0.0.1:9' }], metricsPoll: { timeoutMs: 200 } })
    pool = createBackendPool({ backends: config.backends, poll: config.metricsPoll, clock: createManualClock() })
    await pool.pollOnce()
    expect(pool.states()[0]).toMatchObject({ usable: false, up: false, pollErrors: 1 })
    expect(pool.states()[0]?.lastError).toBeTruthy()
  })
})
