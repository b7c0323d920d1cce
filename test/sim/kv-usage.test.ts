import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf, scrape, stream, valueOf, waitFor } from './support.js'

/** `vllm:kv_cache_usage_perc` follows the blocks that running requests hold, and drains when they end. */
describe('KV cache usage', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ numGpuBlocks: 1001, blockSize: 16, speed: 5, enablePrefixCaching: false })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('rises under concurrent long requests, matches the blocks held, and returns to 0', async () => {
    const requests = Array.from({ length: 8 }, (_, i) =>
      stream(`${sim.url}/v1/completions`, { prompt: promptOf(800, i), max_tokens: 400, ignore_eos: true, stream: true }),
    )
    // 8 × 800 prompt tokens = 400 blocks once prefilled; decode grows them towards 8 × 75 = 600.
    await waitFor(() => sim.engineState().usedBlocks >= 400, 10_000, 'prefill to hold blocks')
    const families = await scrape(sim.url)
    const usage = valueOf(families, 'vllm:kv_cache_usage_perc')
    expect(usage).toBeGreaterThanOrEqual(0.4)
    expect(usage).toBeLessThanOrEqual(0.6)
    expect(valueOf(families, 'vllm:num_requests_running')).toBe(8)

    const results = await Promise.all(requests)
    expect(results.every((r) => r.done)).toBe(true)
    await waitFor(() => sim.engineState().usedBlocks === 0, 5_000, 'blocks to drain')
    expect(valueOf(await scrape(sim.url), 'vllm:kv_cache_usage_perc')).toBe(0)
    expect(sim.engineState().freeBlocks).toBe(1000)
  })
})
