import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createManualClock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { drive, postJson, promptOf, until } from './stack.js'

/**
 * Two emulators behind one gateway, all three on one stepped clock: a burst reaches the gateway whole before
 * any of it is served, and polls, staleness and the emulators' steps happen only as the test moves the clock.
 * (On the real clock a loaded machine spread the burst over time, so the first requests finished before the
 * last arrived and everything fitted on one backend; and a late poll could make a backend look stale.)
 */
describe('several backends', () => {
  const clock = createManualClock()
  let sims: SimHandle[] = []
  let gateway: Gateway
  let url = ''
  beforeAll(async () => {
    sims = await Promise.all([1, 2].map((seed) => startSim({ numGpuBlocks: 64, seed, logger: false }, { clock })))
    gateway = await createGateway({
      config: parseConfig({
        backends: sims.map((sim, i) => ({ url: sim.url, name: `gpu${i}` })),
        metricsPoll: { intervalMs: 20, timeoutMs: 200, staleAfterMs: 300 },
      }),
      clock,
      logger: false,
    })
    url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    // The first poll runs at start; later ones only as the clock moves.
    await until(() => (gateway.backends().every((b) => b.usable) ? true : undefined))
  })
  afterAll(async () => {
    await gateway?.close()
    await Promise.all(sims.map((sim) => sim.close()))
  })

  /** Send `n` requests, wait until the gateway holds them all, then run the clock until they are answered. */
  const burst = async (n: number, queued: number) => {
    let answered = 0
    const pending = Array.from({ length: n }, () =>
      postJson(`${url}/v1/chat/completions`, {
        messages: [{ role: 'user', content: promptOf(100) }],
        max_tokens: 150,
        ignore_eos: true,
      }).finally(() => answered++),
    )
    const atBackends = () => sims.reduce((sum, sim) => sum + sim.engineState().waiting, 0)
    await until(() => (gateway.queueDepth() === queued && atBackends() === n - queued ? true : undefined))
    const placed = sims.map((sim) => sim.engineState().waiting)
    // Small steps: a poll is a real round trip, and must not look late to a clock that races ahead of it.
    await drive(clock, () => answered === n, { stepMs: 2 })
    return { results: await Promise.all(pending), placed }
  }

  it('spreads admissions over the backends by free KV', async () => {
    // 1,024 tokens per backend (less 5% headroom) hold 3 requests of ~250; of 12 at once, 3 go to each and 6 wait.
    const { results, placed } = await burst(12, 6)
    expect(placed).toEqual([3, 3])
    expect(results.every((r) => r.status === 200)).toBe(true)
    const used = results.map((r) => r.headers['x-kvgate-backend'])
    expect(used.filter((b) => b === 'gpu0')).toHaveLength(6)
    expect(used.filter((b) => b === 'gpu1')).toHaveLength(6)
    expect(gateway.ledgerReservedTokens()).toBe(0)
    expect(sims.map((sim) => sim.engineState().preemptions)).toEqual([0, 0])
  })

  it('takes a backend whose metrics fail out of admission, and back when they recover', async () => {
    sims[1]?.setFaults({ metricsUnavailable: true })
    await drive(clock, () => gateway.backends()[1]?.usable === false, { stepMs: 2 })
    const health = await request(`${url}/health`)
    expect(health.statusCode).toBe(200)
    expect(await health.body.json()).toMatchObject({
      backends: [
        { name: 'gpu0', usable: true },
        { name: 'gpu1', usable: false },
      ],
    })
    // Only gpu0 admits: 3 at once, 3 wait for them.
    const { results, placed } = await burst(6, 3)
    expect(placed).toEqual([3, 0])
    expect(results.every((r) => r.status === 200 && r.headers['x-kvgate-backend'] === 'gpu0')).toBe(true)

    sims[1]?.setFaults({ metricsUnavailable: false })
    await drive(clock, () => gateway.backends()[1]?.usable === true, { stepMs: 2 })
    expect(gateway.ledgerReservedTokens()).toBe(0)
  })
})
