import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManualClock } from '../../src/core/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf, scrape, stream, sampleValue, waitFor } from './support.js'

const TTFT = [
  '0.001',
  '0.005',
  '0.01',
  '0.02',
  '0.04',
  '0.06',
  '0.08',
  '0.1',
  '0.25',
  '0.5',
  '0.75',
  '1.0',
  '2.5',
  '5.0',
  '7.5',
  '10.0',
  '20.0',
  '40.0',
  '80.0',
  '160.0',
  '640.0',
  '2560.0',
  '+Inf',
]
const ITL = [
  '0.01',
  '0.025',
  '0.05',
  '0.075',
  '0.1',
  '0.15',
  '0.2',
  '0.3',
  '0.4',
  '0.5',
  '0.75',
  '1.0',
  '2.5',
  '5.0',
  '7.5',
  '10.0',
  '20.0',
  '40.0',
  '80.0',
  '+Inf',
]
const LATENCY = [
  '0.3',
  '0.5',
  '0.8',
  '1.0',
  '1.5',
  '2.0',
  '2.5',
  '5.0',
  '10.0',
  '15.0',
  '20.0',
  '30.0',
  '40.0',
  '50.0',
  '60.0',
  '120.0',
  '240.0',
  '480.0',
  '960.0',
  '1920.0',
  '7680.0',
  '+Inf',
]

/** `/metrics` parsed by a real Prometheus text parser: vLLM's names, types, labels, buckets, and values that agree with the engine. */
describe('/metrics exposition', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ model: 'llama-8b', numGpuBlocks: 300, blockSize: 16, speed: 10 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('declares vLLM names, types and labels', async () => {
    const res = await request(`${sim.url}/metrics`)
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8')
    await res.body.text()
    const families = await scrape(sim.url)
    const types: Record<string, string> = {
      'vllm:num_requests_running': 'GAUGE',
      'vllm:num_requests_waiting': 'GAUGE',
      'vllm:kv_cache_usage_perc': 'GAUGE',
      'vllm:cache_config_info': 'GAUGE',
      'vllm:prefix_cache_queries_total': 'COUNTER',
      'vllm:prefix_cache_hits_total': 'COUNTER',
      'vllm:num_preemptions_total': 'COUNTER',
      'vllm:prompt_tokens_total': 'COUNTER',
      'vllm:generation_tokens_total': 'COUNTER',
      'vllm:request_success_total': 'COUNTER',
      'vllm:time_to_first_token_seconds': 'HISTOGRAM',
      'vllm:inter_token_latency_seconds': 'HISTOGRAM',
      'vllm:request_time_per_output_token_seconds': 'HISTOGRAM',
      'vllm:e2e_request_latency_seconds': 'HISTOGRAM',
      'vllm:request_queue_time_seconds': 'HISTOGRAM',
      'vllm:request_prefill_time_seconds': 'HISTOGRAM',
      'vllm:request_decode_time_seconds': 'HISTOGRAM',
      'vllm:request_inference_time_seconds': 'HISTOGRAM',
      'vllm:request_prompt_tokens': 'HISTOGRAM',
      'vllm:request_generation_tokens': 'HISTOGRAM',
      'vllm:request_params_max_tokens': 'HISTOGRAM',
      'vllm:request_params_n': 'HISTOGRAM',
    }
    for (const [name, type] of Object.entries(types)) expect(families.get(name)?.type, name).toBe(type)
    expect(families.has('vllm:gpu_cache_usage_perc')).toBe(false)
    expect(families.get('vllm:num_requests_running')?.metrics[0]?.labels).toEqual({
      engine: '0',
      model_name: 'llama-8b',
    })
    const reasons = families.get('vllm:request_success_total')?.metrics.map((m) => m.labels?.['finished_reason'])
    expect(reasons).toEqual(['stop', 'length', 'abort', 'error'])
    expect(Object.keys(families.get('vllm:time_to_first_token_seconds')?.metrics[0]?.buckets ?? {})).toEqual(TTFT)
    expect(Object.keys(families.get('vllm:inter_token_latency_seconds')?.metrics[0]?.buckets ?? {})).toEqual(ITL)
    expect(Object.keys(families.get('vllm:request_time_per_output_token_seconds')?.metrics[0]?.buckets ?? {})).toEqual(
      ITL,
    )
    for (const name of ['e2e_request_latency', 'request_queue_time', 'request_prefill_time', 'request_decode_time']) {
      expect(Object.keys(families.get(`vllm:${name}_seconds`)?.metrics[0]?.buckets ?? {})).toEqual(LATENCY)
    }
    expect(families.get('vllm:iteration_tokens_total')?.type).toBe('HISTOGRAM')
    expect(Object.keys(families.get('vllm:request_prompt_tokens')?.metrics[0]?.buckets ?? {})).toEqual(
      // 1-2-5 up to max_model_len, here capped to the KV cache: 299 blocks × 16 = 4,784 tokens.
      ['1.0', '2.0', '5.0', '10.0', '20.0', '50.0', '100.0', '200.0', '500.0', '1000.0', '2000.0', '+Inf'],
    )
    // prometheus_client adds a `_created` gauge for every counter and histogram series.
    expect(families.get('vllm:generation_tokens_created')?.type).toBe('GAUGE')
    expect(families.get('vllm:request_success_created')?.metrics).toHaveLength(4)
    expect(Number(families.get('vllm:time_to_first_token_seconds_created')?.metrics[0]?.value)).toBeGreaterThan(1.7e9)
    const info = families.get('vllm:cache_config_info')?.metrics[0]
    expect(info?.value).toBe('1.0')
    expect(info?.labels).toMatchObject({
      block_size: '16',
      num_gpu_blocks: '300',
      engine: '0',
      enable_prefix_caching: 'True',
    })
  })

  it('agrees exactly with engineState() while a queue forms, preempts and drains (engine on a manual clock)', async () => {
    // The engine moves only when the test advances its clock, so a scrape and engineState() see the same
    // instant and must agree exactly.
    const clock = createManualClock()
    const frozen = await startSim({ model: 'llama-8b', numGpuBlocks: 300, blockSize: 16 }, { clock })
    try {
      const requests = Array.from({ length: 24 }, (_, i) =>
        stream(`${frozen.url}/v1/completions`, {
          prompt: promptOf(400, i),
          max_tokens: 200,
          ignore_eos: true,
          stream: true,
        }),
      )
      await waitFor(() => frozen.engineState().waiting === 24, 10_000, 'all requests to arrive')
      const checks: Array<{ waiting: number; running: number; preemptions: number }> = []
      let done = false
      void Promise.all(requests).then(() => {
        done = true
      })
      while (!done) {
        clock.advance(250)
        const state = frozen.engineState()
        const families = await scrape(frozen.url)
        expect(sampleValue(families, 'vllm:num_requests_running')).toBe(state.running)
        expect(sampleValue(families, 'vllm:num_requests_waiting')).toBe(state.waiting)
        expect(sampleValue(families, 'vllm:kv_cache_usage_perc')).toBe(1 - state.freeBlocks / (state.numGpuBlocks - 1))
        expect(sampleValue(families, 'vllm:num_preemptions_total')).toBe(state.preemptions)
        checks.push(state)
        if (checks.length > 1000) throw new Error('the burst did not finish')
      }
      expect(checks.some((c) => c.running > 0 && c.waiting > 0)).toBe(true)
      expect(checks.at(-1)?.preemptions).toBeGreaterThan(0)

      const end = await scrape(frozen.url)
      expect(frozen.engineState()).toMatchObject({ running: 0, waiting: 0, usedBlocks: 0 })
      expect(sampleValue(end, 'vllm:kv_cache_usage_perc')).toBe(0)
      expect(sampleValue(end, 'vllm:generation_tokens_total')).toBe(24 * 200)
      expect(sampleValue(end, 'vllm:prompt_tokens_total')).toBe(24 * 400)
      const success = end
        .get('vllm:request_success_total')
        ?.metrics.find((m) => m.labels?.['finished_reason'] === 'length')
      expect(Number(success?.value)).toBe(24)
      const ttft = end.get('vllm:time_to_first_token_seconds')?.metrics[0]?.buckets ?? {}
      expect(Number(ttft['+Inf'])).toBe(24)
      const itl = end.get('vllm:inter_token_latency_seconds')?.metrics[0]?.buckets ?? {}
      expect(Number(itl['+Inf'])).toBe(24 * 199)
    } finally {
      await frozen.close()
    }
  })

  it('writes labels in alphabetical order and numbers as prometheus_client does', async () => {
    const text = await (await request(`${sim.url}/metrics`)).body.text()
    expect(text).toContain('vllm:request_success_total{engine="0",finished_reason="stop",model_name="llama-8b"} ')
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="llama-8b"} ')
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="llama-8b"} ')
    expect(text).toMatch(/^vllm:num_requests_running\{engine="0",model_name="llama-8b"\} 0\.0$/m)
    // Created timestamps are over a million, so Go's exponent form: 1.7…e+09.
    expect(text).toMatch(/^vllm:prompt_tokens_created\{engine="0",model_name="llama-8b"\} \d\.\d+e\+09$/m)
  })

  it('--metrics-compat v0 emits vllm:gpu_cache_usage_perc instead', async () => {
    const old = await startSim({ metricsCompat: 'v0', speed: 50 })
    try {
      const families = await scrape(old.url)
      expect(families.has('vllm:gpu_cache_usage_perc')).toBe(true)
      expect(families.has('vllm:kv_cache_usage_perc')).toBe(false)
      expect(sampleValue(families, 'vllm:gpu_cache_usage_perc')).toBe(0)
    } finally {
      await old.close()
    }
  })
})
