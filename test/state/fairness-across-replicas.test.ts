import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisAvailable, startRedis, type RedisServer } from '../support/redis.js'
import { startReplicas, streamOne, warmConnections, type Replicas } from './replicas.js'

const PROMPT = 100
const OUTPUT = 100
// Weighted service as VTC prices it (w_in 1, w_out 2), counted when a request completes.
const SERVICE_PER_REQUEST = PROMPT + 2 * OUTPUT

/** Closed-loop clients: `slots` requests kept outstanding through `url` until `stop()`; served service counted. */
function closedLoop(url: string, user: string, slots: number, served: Map<string, number>, counting: () => boolean) {
  let running = true
  const loops = Array.from({ length: slots }, async () => {
    while (running) {
      const r = await streamOne(url, { user, promptTokens: PROMPT, outputTokens: OUTPUT })
      if (r.status === 200 && r.done && counting()) served.set(user, (served.get(user) ?? 0) + SERVICE_PER_REQUEST)
    }
  })
  return async () => {
    running = false
    await Promise.all(loops)
  }
}

/**
 * VTC across replicas: a heavy user keeps 10× the requests outstanding, spread over three gateways, and a
 * light user sends through one of them only. The shared counters and the fairness gate (a replica yields its
 * room to a user served less whose head elsewhere would no longer fit) give both the same service, as one
 * gateway would; without them the two replicas that see only the heavy user hand it two thirds of the KV.
 */
describe.runIf(redisAvailable)('fairness across replicas', () => {
  let server: RedisServer
  let replicas: Replicas
  beforeAll(async () => {
    server = await startRedis()
    replicas = await startReplicas({
      count: 3,
      state: { store: 'redis', url: server.url, keyPrefix: 'fair:' },
      sim: { numGpuBlocks: 64, speed: 10, seed: 3 },
      config: { policy: { name: 'vtc', options: {} }, admission: { defaultDeadlineMs: 120_000 } },
    })
  })
  afterAll(async () => {
    await replicas?.close()
    await server?.close()
  })

  it('a heavy user on three replicas and a light user on one get service within 0.7–1.4 of each other', async () => {
    const [a, b, c] = replicas.urls as [string, string, string]
    await warmConnections(replicas.urls, 26)
    const served = new Map<string, number>()
    let counting = false
    const stops = [
      closedLoop(a, 'heavy', 20, served, () => counting),
      closedLoop(b, 'heavy', 20, served, () => counting),
      closedLoop(c, 'heavy', 20, served, () => counting),
      closedLoop(a, 'light', 6, served, () => counting),
    ]
    // Warm up until both are backlogged and served, then count a window of completions.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    counting = true
    // 80 completions each at least: what VTC's counters owed either user when counting began (a few requests'
    // worth, paid back first) is then a small part of the window, as in the single-gateway bound.
    const deadline = Date.now() + 40_000
    while (Math.min(served.get('heavy') ?? 0, served.get('light') ?? 0) < 80 * SERVICE_PER_REQUEST) {
      if (Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    counting = false
    await Promise.all(stops.map((stop) => stop()))
    const heavy = served.get('heavy') ?? 0
    const light = served.get('light') ?? 0
    console.log(`fairness across replicas: heavy ${heavy}, light ${light}, light/heavy ${(light / heavy).toFixed(2)}`)
    expect(heavy).toBeGreaterThan(0)
    expect(light / heavy).toBeGreaterThanOrEqual(0.7)
    expect(light / heavy).toBeLessThanOrEqual(1.4)
    for (const gateway of replicas.gateways) expect(gateway.ledgerReservedTokens()).toBe(0)
  })
})
