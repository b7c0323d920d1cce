import { spawn } from 'node:child_process'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { findExecutable } from '../deploy/support.js'
import { postJson, promptOf, scrape, sampleValue } from './support.js'

/**
 * The CPU tier through the HTTP API: `--kv-offloading-size` in GiB becomes blocks, `vllm:cache_config_info`
 * says so, and a conversation whose history left the GPU cache finds it in the tier on its next turn, as the
 * external prefix cache and the OffloadingConnector's transfer counters show.
 */
const BLOCK_BYTES = 131_072 * 16 // the default kv bytes per token (Llama-3.1-8B, bf16) × block size

describe('KV offloading tier over HTTP', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ speed: 100, numGpuBlocks: 65, kvOffloadingSize: 1, seed: 4 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('sizes the tier from GiB and reports it in vllm:cache_config_info', async () => {
    expect(sim.engineState()).toMatchObject({ numCpuBlocks: 1024 ** 3 / BLOCK_BYTES, cpuBlocks: 0 })
    const info = (await scrape(sim.url)).get('vllm:cache_config_info')?.metrics[0]?.labels
    expect(info).toMatchObject({
      num_cpu_blocks: '512',
      num_gpu_blocks: '65',
      kv_offloading_size: '1.0',
      kv_offloading_backend: 'native',
    })
  })

  it("serves a later turn's history from the tier and counts it as vLLM's connector does", async () => {
    const conversations = Array.from({ length: 4 }, (_, c) => [{ role: 'user', content: promptOf(400, c + 1) }])
    for (const messages of conversations) {
      const { status } = await postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 4, ignore_eos: true })
      expect(status).toBe(200)
    }
    const before = await scrape(sim.url)
    for (const [c, messages] of conversations.entries()) {
      const next = [...messages, { role: 'assistant', content: 'ok' }, { role: 'user', content: promptOf(30, 50 + c) }]
      const { status } = await postJson(`${sim.url}/v1/chat/completions`, {
        messages: next,
        max_tokens: 4,
        ignore_eos: true,
      })
      expect(status).toBe(200)
    }
    const after = await scrape(sim.url)
    const delta = (name: string): number => sampleValue(after, name) - sampleValue(before, name)
    const external = delta('vllm:external_prefix_cache_hits_total')
    // Four histories of 400+ tokens cannot all stay in 64 GPU blocks: the first ones come from the tier.
    expect(external).toBeGreaterThanOrEqual(2 * 400 - 2 * 16)
    expect(delta('vllm:external_prefix_cache_queries_total')).toBe(delta('vllm:prefix_cache_queries_total'))
    const loaded = after
      .get('vllm:kv_offload_total_bytes_total')
      ?.metrics.find((m) => m.labels?.['transfer_type'] === 'CPU_to_GPU')
    expect(Number(loaded?.value)).toBe((sampleValue(after, 'vllm:external_prefix_cache_hits_total') / 16) * BLOCK_BYTES)
    const stored = after
      .get('vllm:kv_offload_total_bytes_total')
      ?.metrics.find((m) => m.labels?.['transfer_type'] === 'GPU_to_CPU')
    expect(Number(stored?.value)).toBe(sim.engineState().cpuBlocks * BLOCK_BYTES)
    expect(after.get('vllm:kv_offload_size')?.type).toBe('HISTOGRAM')
    expect(after.get('vllm:kv_offload_total_time_total')?.type).toBe('COUNTER')
  })

  it("takes vLLM 0.11's --kv-transfer-config for the same tier", async () => {
    const old = await startSim({
      speed: 100,
      kvTransferConfig: {
        kv_connector: 'OffloadingConnector',
        kv_role: 'kv_both',
        kv_connector_extra_config: { num_cpu_blocks: 77 },
      },
    })
    try {
      expect(old.engineState().numCpuBlocks).toBe(77)
      const info = (await scrape(old.url)).get('vllm:cache_config_info')?.metrics[0]?.labels
      expect(info).toMatchObject({ num_cpu_blocks: '77', kv_offloading_size: 'None', kv_offloading_backend: 'None' })
      expect((await scrape(old.url)).has('vllm:external_prefix_cache_hits_total')).toBe(true)
    } finally {
      await old.close()
    }
  })

  const promtool = findExecutable('promtool')
  it.skipIf(promtool === undefined)('promtool parses the exposition with the tier on', async () => {
    const text = await (await request(`${sim.url}/metrics`)).body.text()
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(promtool!, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
      child.on('close', (code) => resolve({ code, output }))
      child.stdin.end(text)
    })
    // promtool's lint objects to vLLM's own naming (a colon in every name, `iteration_tokens_total` being a
    // histogram); anything else (a parse error above all) would be the emulator's.
    const problems = result.output
      .split('\n')
      .filter((line) => line.trim() !== '')
      .filter((line) => !line.endsWith("metric names should not contain ':'"))
      .filter((line) => !line.startsWith('vllm:iteration_tokens_total non-counter metrics should not have "_total"'))
    expect(problems).toEqual([])
  })
})
