import { afterEach, describe, expect, it } from 'vitest'
import { metricValue, postJson, promptOf, scrape, simCounter, startFleet, type FleetStack } from './fleet-stack.js'

/**
 * Conversations over three emulators: with prefix-aware routing every turn after the first goes back to the
 * replica that served the first (the one that caches its history), and the emulators' own prefix-cache
 * counters show the hits; round-robin scatters the same conversations and hits less.
 */
describe('prefix-aware routing over real emulators', () => {
  let fleet: FleetStack | undefined
  afterEach(async () => {
    await fleet?.close()
    fleet = undefined
  })

  const CONVERSATIONS = 4
  const TURNS = 5

  /** Each conversation sends its turns one after another, with the history; conversations run side by side. */
  const converse = async (stack: FleetStack) => {
    const backends: string[][] = []
    await Promise.all(
      Array.from({ length: CONVERSATIONS }, async (_, c) => {
        const messages: { role: string; content: string }[] = []
        const used: string[] = []
        backends[c] = used
        for (let turn = 0; turn < TURNS; turn++) {
          messages.push({ role: 'user', content: `conversation ${c} turn ${turn}${promptOf(120)}` })
          const r = await postJson(`${stack.url}/v1/chat/completions`, { messages, max_tokens: 12 })
          expect(r.status).toBe(200)
          used.push(String(r.headers['x-kvgate-backend']))
          messages.push({ role: 'assistant', content: JSON.parse(r.text).choices[0].message.content })
        }
      }),
    )
    const hits = await Promise.all(stack.sims.map((s) => simCounter(s, 'vllm:prefix_cache_hits_total')))
    const queries = await Promise.all(stack.sims.map((s) => simCounter(s, 'vllm:prefix_cache_queries_total')))
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
    return { backends, hitRate: sum(hits) / sum(queries) }
  }

  const start = (routing: string) =>
    // Caches of 32k tokens: a conversation or two is a few points of load, well inside the affinity gap.
    startFleet({
      sims: [{ numGpuBlocks: 2048 }, { numGpuBlocks: 2048 }, { numGpuBlocks: 2048 }],
      config: { routing: { name: routing, options: {} } },
    })

  it('keeps each conversation on one replica and hits its prefix cache', async () => {
    fleet = await start('prefix-aware')
    const { backends, hitRate } = await converse(fleet)
    for (const used of backends) expect(new Set(used).size).toBe(1)
    const metrics = await scrape(fleet.gateway.adminUrl())
    const affinity = ['b0', 'b1', 'b2'].reduce(
      (n, b) => n + (metricValue(metrics, `kvgate_routing_decisions_total{backend="${b}",reason="affinity"}`) ?? 0),
      0,
    )
    expect(affinity).toBe(CONVERSATIONS * (TURNS - 1))
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)

    const prefixAwareHitRate = hitRate
    await fleet.close()
    fleet = await start('round-robin')
    const scattered = await converse(fleet)
    expect(scattered.backends.some((used) => new Set(used).size > 1)).toBe(true)
    expect(prefixAwareHitRate).toBeGreaterThan(scattered.hitRate + 0.2)
  })
})
