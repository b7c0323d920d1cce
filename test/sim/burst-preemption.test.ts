import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf, scrape, stream, sampleValue, waitFor } from './support.js'

/**
 * The acceptance burst: 64 streams of 500 prompt + 300 output tokens against 256 blocks (4,080
 * tokens of KV) cannot all run at once, so requests wait and running ones get preempted, yet every one
 * completes and the cache drains to 0.
 */
describe('burst beyond KV capacity', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ numGpuBlocks: 256, speed: 100, seed: 3 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('queues and preempts, completes every request, and drains the cache', async () => {
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        stream(`${sim.url}/v1/completions`, {
          prompt: promptOf(500, i + 1),
          max_tokens: 300,
          ignore_eos: true,
          stream: true,
          stream_options: { include_usage: true },
        }),
      ),
    )

    for (const result of results) {
      expect(result.status).toBe(200)
      expect(result.done).toBe(true)
      const usage = result.events.at(-1)?.['usage'] as { prompt_tokens: number; completion_tokens: number }
      expect(usage).toEqual({ prompt_tokens: 500, completion_tokens: 300, total_tokens: 800 })
      expect(result.events.filter((e) => (e['choices'] as unknown[]).length > 0)).toHaveLength(300)
    }
    // Evidence from the emulator's own counters rather than from polling during the burst, which a loaded
    // machine can starve: requests waited (queue time well above a step), and the pool ran out of blocks
    // (vLLM preempts only then).
    const after = await scrape(sim.url)
    const queue = after.get('vllm:request_queue_time_seconds')?.metrics[0]?.buckets ?? {}
    expect(Number(queue['0.3'])).toBeLessThan(64)
    expect(sampleValue(after, 'vllm:num_preemptions_total')).toBeGreaterThan(0)
    expect(sampleValue(after, 'vllm:num_preemptions_total')).toBe(sim.engineState().preemptions)
    await waitFor(() => sim.engineState().usedBlocks === 0, 5_000, 'blocks to drain')
    const drained = await scrape(sim.url)
    expect(sampleValue(drained, 'vllm:kv_cache_usage_perc')).toBe(0)
    expect(sampleValue(drained, 'vllm:num_requests_running')).toBe(0)
    expect(sampleValue(drained, 'vllm:num_requests_waiting')).toBe(0)
    expect(sampleValue(drained, 'vllm:generation_tokens_total')).toBe(64 * 300)
  })
})
