import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { until } from '../support/poll.js'
import { redisAvailable, startRedis, type RedisServer } from '../support/redis.js'
import { preemptions, startReplicas, streamOne, warmConnections, type Replicas } from './replicas.js'

// 256 blocks of 16 = 4,096 tokens of KV; 5 requests of 700 fit (less 5% headroom). Each gateway alone would
// admit 5, so three gateways with their own ledgers run 15 at once: 2.5× the cache.
const PER_GATEWAY = 10
const SIM = { numGpuBlocks: 256, speed: 20, seed: 1 }

async function burst(replicas: Replicas) {
  await warmConnections(replicas.urls, PER_GATEWAY)
  return await Promise.all(replicas.urls.flatMap((url) => Array.from({ length: PER_GATEWAY }, () => streamOne(url))))
}

describe('three gateways in front of one emulator', () => {
  let replicas: Replicas | undefined
  afterEach(async () => {
    await replicas?.close()
    replicas = undefined
  })

  it('with memory state each gateway spends the whole cache: the emulator preempts', async () => {
    replicas = await startReplicas({ count: 3, state: { store: 'memory' }, sim: SIM })
    const results = await burst(replicas)
    expect(results.every((r) => r.status === 200 && r.done && r.contentChunks === 200)).toBe(true)
    expect(await preemptions(replicas.sim)).toBeGreaterThan(0)
  })

  describe.runIf(redisAvailable)('with redis state', () => {
    let server: RedisServer
    beforeAll(async () => {
      server = await startRedis()
    })
    afterAll(async () => server?.close())

    it('admits across all three as one: no preemption, every request served, every ledger back to 0', async () => {
      replicas = await startReplicas({
        count: 3,
        state: { store: 'redis', url: server.url, keyPrefix: 'burst:' },
        sim: SIM,
      })
      const results = await burst(replicas)
      expect(results.filter((r) => r.status !== 200 || !r.done || r.contentChunks !== 200)).toEqual([])
      expect(await preemptions(replicas.sim)).toBe(0)
      for (const gateway of replicas.gateways) {
        await until(() => (gateway.ledgerReservedTokens() === 0 ? true : undefined))
        expect(gateway.queueDepth()).toBe(0)
      }
      // The shared books are empty too: no replica left anything outstanding.
      const redis = server.client()
      const outstanding = await redis.hgetall('burst:o:sim0')
      expect(outstanding).toEqual({})
      expect(await redis.scard('burst:live:sim0')).toBe(0)
      // Each replica counts the others at its heartbeat (1 s): the first one started saw itself alone.
      const first = replicas.urls[0]
      const health = await until(async () => {
        const body = (await (await request(`${first}/health`)).body.json()) as Record<string, unknown>
        return (body['state'] as { replicas?: number } | undefined)?.replicas === 3 ? body : undefined
      })
      expect(health['state']).toEqual({ store: 'redis', up: true, degraded: false, replicas: 3 })
    })
  })
})
