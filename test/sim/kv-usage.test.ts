import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManualClock, type ManualClock } from '../../src/core/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { promptOf, scrape, stream, sampleValue, waitFor } from './support.js'

/**
 * `vllm:kv_cache_usage_perc` follows the blocks that running requests hold, and drains when they end. The
 * engine runs on a manual clock so each reading is taken at a known point of the run.
 */
describe('KV cache usage', () => {
  let sim: SimHandle
  let clock: ManualClock
  beforeAll(async () => {
    clock = createManualClock()
    sim = await startSim({ numGpuBlocks: 1001, blockSize: 16, enablePrefixCaching: false }, { clock })
  })
  afterAll(async () => {
    await sim.close()
  })

  const usage = async (): Promise<number> => sampleValue(await scrape(sim.url), 'vllm:kv_cache_usage_perc')

  it('rises under concurrent long requests, matches the blocks held, and returns to 0', async () => {
    const requests = Array.from({ length: 8 }, (_, i) =>
      stream(`${sim.url}/v1/completions`, {
        prompt: promptOf(800, i),
        max_tokens: 400,
        ignore_eos: true,
        stream: true,
      }),
    )
    await waitFor(() => sim.engineState().waiting === 8, 10_000, 'all requests to arrive')
    expect(await usage()).toBe(0)

    // One step prefills all eight prompts (6,400 tokens ≤ 8,192): 8 × 50 blocks of the 1,000 usable.
    clock.advance(1)
    expect(sim.engineState()).toMatchObject({ running: 8, waiting: 0, usedBlocks: 400 })
    expect(await usage()).toBeCloseTo(0.4, 10)

    // Decoding grows each sequence by a block every 16 tokens (a step is ~9 ms: 3 s is ~325 of the 400).
    const readings: number[] = []
    for (let i = 0; i < 10; i++) {
      clock.advance(300)
      readings.push(await usage())
    }
    expect(readings.every((u, i) => i === 0 || u >= readings[i - 1]!)).toBe(true)
    expect(readings.at(-1)!).toBeGreaterThan(0.4)
    expect(readings.at(-1)!).toBeLessThanOrEqual(0.6)

    clock.advance(60_000)
    const results = await Promise.all(requests)
    expect(results.every((r) => r.done)).toBe(true)
    expect(await usage()).toBe(0)
    expect(sim.engineState()).toMatchObject({ running: 0, usedBlocks: 0, freeBlocks: 1000 })
  })
})
