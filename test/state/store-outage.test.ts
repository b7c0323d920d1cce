import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { until } from '../support/poll.js'
import { redisAvailable, startRedis, type RedisServer } from '../support/redis.js'
import { preemptions, startReplicas, streamOne, warmConnections, type Replicas } from './replicas.js'

interface Health {
  state?: { degraded: boolean; up: boolean; replicas: number }
}

const health = async (url: string): Promise<Health> => (await (await request(`${url}/health`)).body.json()) as Health

/**
 * Redis goes away in the middle of a burst through three gateways and comes back empty (nothing persisted):
 * every replica falls back to its 1/N share, says so, keeps serving without a preemption, and returns to the
 * shared ledger by itself, re-asserting what it still has running.
 */
describe.runIf(redisAvailable)('the shared store goes away mid-burst', () => {
  let server: RedisServer
  let replicas: Replicas
  beforeAll(async () => {
    server = await startRedis()
    replicas = await startReplicas({
      count: 3,
      state: { store: 'redis', url: server.url, keyPrefix: 'outage:', commandTimeoutMs: 200, expectedReplicas: 3 },
      sim: { numGpuBlocks: 256, speed: 10, seed: 2 },
    })
  })
  afterAll(async () => {
    await replicas?.close()
    await server?.close()
  })

  it('degrades to a 1/N share, serves without preemption, and recovers without a restart', async () => {
    await warmConnections(replicas.urls, 8)
    const results = Promise.all(replicas.urls.flatMap((url) => Array.from({ length: 8 }, () => streamOne(url))))
    // Some admitted, some queued: now the store disappears.
    await until(() => (replicas.gateways.some((g) => g.ledgerReservedTokens() > 0) ? true : undefined))
    await server.stop()
    for (const url of replicas.urls) {
      await until(async () => ((await health(url)).state?.degraded === true ? true : undefined), 5_000)
    }
    const metrics = await (await request(`${replicas.gateways[0]?.adminUrl()}/metrics`)).body.text()
    expect(metrics).toMatch(/^kvgate_state_degraded 1$/m)
    expect(metrics).toMatch(/^kvgate_state_store_up 0$/m)
    await server.start()
    for (const url of replicas.urls) {
      await until(async () => ((await health(url)).state?.degraded === false ? true : undefined), 10_000)
    }
    const done = await results
    expect(done.filter((r) => r.status !== 200 || !r.done)).toEqual([])
    expect(await preemptions(replicas.sim)).toBe(0)
    for (const gateway of replicas.gateways)
      await until(() => (gateway.ledgerReservedTokens() === 0 ? true : undefined))
    // What was re-asserted after the restart was released again: the shared books are empty.
    const redis = server.client()
    await until(async () => (Object.keys(await redis.hgetall('outage:o:sim0')).length === 0 ? true : undefined))
    expect(await redis.scard('outage:live:sim0')).toBe(0)
    expect((await health(replicas.urls[1] as string)).state).toMatchObject({ up: true, degraded: false, replicas: 3 })
  })
})
