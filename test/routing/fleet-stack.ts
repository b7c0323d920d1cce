import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import type { Clock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle, type SimOptions } from '../../src/sim/index.js'
import { until } from '../support/poll.js'

export { drive, until } from '../support/poll.js'
export { metricValue, postJson, promptOf, scrape, sseData } from '../gateway/stack.js'

/** Several emulators behind one gateway, all on loopback port 0; backends named `name` (or `b<i>`). */
export interface FleetStack {
  sims: SimHandle[]
  gateway: Gateway
  url: string
  close(): Promise<void>
}

export async function startFleet(options: {
  sims: readonly (SimOptions & { name?: string })[]
  config?: Record<string, unknown>
  /** Extra fields of each backend's config entry (`drain`, `models`, …), by position. */
  backends?: readonly Record<string, unknown>[]
  clock?: Clock
}): Promise<FleetStack> {
  const hooks = options.clock === undefined ? {} : { clock: options.clock }
  const sims = await Promise.all(
    options.sims.map(({ name: _name, ...sim }, i) =>
      startSim({ speed: 20, numGpuBlocks: 256, logger: false, seed: i + 1, ...sim }, hooks),
    ),
  )
  const raw = options.config ?? {}
  const config = parseConfig({
    ...raw,
    backends: sims.map((sim, i) => ({
      url: sim.url,
      name: options.sims[i]?.name ?? `b${i}`,
      ...options.backends?.[i],
    })),
    metricsPoll: { intervalMs: 20, timeoutMs: 500, staleAfterMs: 2000, ...(raw['metricsPoll'] as object | undefined) },
  })
  const gateway = await createGateway({
    config,
    logger: false,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  await until(() => (gateway.backends().every((b) => b.usable) ? true : undefined), { what: 'every backend usable' })
  return {
    sims,
    gateway,
    url,
    async close() {
      await gateway.close()
      await Promise.all(sims.map((sim) => sim.close()))
    },
  }
}

/** Sum of one vLLM counter over an emulator's series (`vllm:prefix_cache_hits_total`, …). */
export async function simCounter(sim: SimHandle, name: string): Promise<number> {
  const text = await (await request(`${sim.url}/metrics`)).body.text()
  let total = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}
