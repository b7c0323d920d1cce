import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, promptOf, scrape, sampleValue } from './support.js'

type Message = { role: string; content: string }

/**
 * A multi-turn conversation resends its history each turn; with prefix caching those full blocks (the
 * previous prompt and the previous answer) are hits, counted in tokens by the prefix-cache counters, and
 * the resident cache does not count as usage.
 */
describe('prefix caching', () => {
  let sim: SimHandle
  beforeAll(async () => {
    sim = await startSim({ speed: 100, numGpuBlocks: 2048 })
  })
  afterAll(async () => {
    await sim.close()
  })

  it('hits the repeated history of a multi-turn conversation', async () => {
    const messages: Message[] = [{ role: 'system', content: promptOf(300, 1) }]
    let previousPrompt = 0
    let previousHits = 0
    for (let turn = 0; turn < 4; turn++) {
      messages.push({ role: 'user', content: promptOf(50, turn + 10) })
      const before = await scrape(sim.url)
      const { json } = await postJson(`${sim.url}/v1/chat/completions`, { messages, max_tokens: 40, ignore_eos: true })
      const after = await scrape(sim.url)
      const queries =
        sampleValue(after, 'vllm:prefix_cache_queries_total') - sampleValue(before, 'vllm:prefix_cache_queries_total')
      const hits =
        sampleValue(after, 'vllm:prefix_cache_hits_total') - sampleValue(before, 'vllm:prefix_cache_hits_total')
      const promptTokens = json.usage.prompt_tokens as number
      expect(queries).toBe(promptTokens)
      if (turn === 0) expect(hits).toBe(0)
      else {
        // Every full block the previous turn computed is a hit: its prompt and its answer but the answer's
        // last token, which was sampled and never fed back.
        expect(hits).toBe(Math.floor((previousPrompt + 40 - 1) / 16) * 16)
        expect(hits).toBeGreaterThan(previousHits)
        expect(hits).toBeLessThan(promptTokens)
      }
      previousPrompt = promptTokens
      previousHits = hits
      messages.push({ role: 'assistant', content: json.choices[0].message.content })
    }
    // Nothing runs, so the cached blocks are free (evictable) blocks: usage is 0.
    expect(sampleValue(await scrape(sim.url), 'vllm:kv_cache_usage_perc')).toBe(0)
  })

  it('misses a different conversation and reports the cache as enabled', async () => {
    const before = await scrape(sim.url)
    await postJson(`${sim.url}/v1/completions`, { prompt: promptOf(200, 99), max_tokens: 1 })
    const after = await scrape(sim.url)
    expect(sampleValue(after, 'vllm:prefix_cache_hits_total')).toBe(sampleValue(before, 'vllm:prefix_cache_hits_total'))
    expect(after.get('vllm:cache_config_info')?.metrics[0]?.labels?.['enable_prefix_caching']).toBe('True')
  })
})
