import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { parseSseData } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle, type SimOptions } from '../../src/sim/index.js'
import { until } from '../support/poll.js'

export { drive, until } from '../support/poll.js'

/** A gateway in front of an emulator, both on ephemeral loopback ports. */
export interface Stack {
  sim: SimHandle
  gateway: Gateway
  url: string
  /** The admin listener: `/metrics`, `/debug/*`. */
  adminUrl: string
  close(): Promise<void>
}

export async function startStack(options: { sim?: SimOptions; config?: Record<string, unknown> } = {}): Promise<Stack> {
  const sim = await startSim({ speed: 20, numGpuBlocks: 256, logger: false, ...options.sim })
  const raw = options.config ?? {}
  const config = parseConfig({
    ...raw,
    backends: [{ url: sim.url, name: 'sim0' }],
    metricsPoll: { intervalMs: 20, staleAfterMs: 2000, ...(raw['metricsPoll'] as object | undefined) },
  })
  const gateway = await createGateway({ config, logger: false })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  await until(() => gateway.backends()[0]?.usable === true || undefined)
  return {
    sim,
    gateway,
    url,
    adminUrl: gateway.adminUrl(),
    async close() {
      await gateway.close()
      await sim.close()
    },
  }
}

/** A prompt of exactly `tokens` word-piece tokens ("the" is one token after a space). */
export function promptOf(tokens: number): string {
  return ' the'.repeat(tokens)
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const text = await response.body.text()
  return { status: response.statusCode, headers: response.headers, text }
}

/** Parse an SSE body into its data payloads (with the parser the gateway and the bench use). */
export function sseData(text: string): string[] {
  return parseSseData(text)
}

export async function scrape(url: string): Promise<string> {
  const response = await request(`${url}/metrics`)
  return response.body.text()
}

/** The value of one series in Prometheus text (labels as written, e.g. `{backend="sim0"}`). */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  }
  return undefined
}
