import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, promptOf, until } from './stack.js'

describe('several backends', () => {
  let sims: SimHandle[] = []
  let gateway: Gateway
  let url = ''
  beforeAll(async () => {
    sims = await Promise.all([1, 2].map((seed) => startSim({ numGpuBlocks: 64, speed: 20, seed, logger: false })))
    gateway = await createGateway({
      config: parseConfig({
        backends: sims.map((sim, i) => ({ url: sim.url, name: `gpu${i}` })),
        metricsPoll: { intervalMs: 20, timeoutMs: 200, staleAfterMs: 300 },
      }),
      logger: false,
    })
    url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => (gateway.backends().every((b) => b.usable) ? true : undefined))
  })
  afterAll(async () => {
    await gateway?.close()
    await Promise.all(sims.map((sim) => sim.close()))
  })

  const burst = (n: number) =>
    Promise.all(
      Array.from({ length: n }, () =>
        postJson(`${url}/v1/chat/completions`, {
          messages: [{ role: 'user', content: promptOf(100) }],
          max_tokens: 150,
          ignore_eos: true,
        }),
      ),
    )

  it('spreads admissions over the backends by free KV', async () => {
    // 1,024 tokens per backend hold 3 requests of ~250; 12 at once must use both.
    const results = await burst(12)
    expect(results.every((r) => r.status === 200)).toBe(true)
    const used = new Set(results.map((r) => r.headers['x-kvgate-backend']))
    expect(used).toEqual(new Set(['gpu0', 'gpu1']))
    expect(gateway.ledgerReservedTokens()).toBe(0)
    expect(sims.map((sim) => sim.engineState().preemptions)).toEqual([0, 0])
  })

  it('takes a backend whose metrics fail out of admission, and back when they recover', async () => {
    sims[1]?.setFaults({ metricsUnavailable: true })
    await until(() => (gateway.backends()[1]?.usable === false ? true : undefined))
    const health = await request(`${url}/health`)
    expect(health.statusCode).toBe(200)
    expect(await health.body.json()).toMatchObject({
      backends: [
        { name: 'gpu0', usable: true },
        { name: 'gpu1', usable: false },
      ],
    })
    const results = await burst(6)
    expect(results.every((r) => r.status === 200 && r.headers['x-kvgate-backend'] === 'gpu0')).toBe(true)

    sims[1]?.setFaults({ metricsUnavailable: false })
    await until(() => (gateway.backends()[1]?.usable === true ? true : undefined))
    expect(gateway.ledgerReservedTokens()).toBe(0)
  })
})
