import { createServer, type Server } from 'node:http'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createManualClock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { freePort } from '../support/net.js'
import { until } from '../support/poll.js'

interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

/** A pino logger whose lines land in an array, parsed. */
function capturedLogger(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine)
      done()
    },
  })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

const json = async (url: string) => {
  const response = await request(url)
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> }
}

let gateway: Gateway | undefined
let sim: SimHandle | undefined
let other: Server | undefined

afterEach(async () => {
  await gateway?.close()
  await sim?.close()
  await new Promise((resolve) => (other === undefined ? resolve(undefined) : other.close(resolve)))
  gateway = undefined
  sim = undefined
  other = undefined
})

/**
 * A gateway on a manual clock that is never advanced: the first poll is sent at start, so whatever it logs
 * arrives within one poll interval of the clock (zero of it) — only I/O is awaited.
 */
async function gatewayFor(url: string) {
  const { logger, lines } = capturedLogger()
  const config = parseConfig({
    backends: [{ url, name: 'b0' }],
    metricsPoll: { intervalMs: 1_000, staleAfterMs: 5_000 },
  })
  gateway = await createGateway({ config, logger, clock: createManualClock() })
  const publicUrl = await gateway.listen({ port: 0, host: '127.0.0.1' })
  const firstResult = () =>
    until(() => lines.find((l) => l['backend'] === 'b0' && /start-up|ready/.test(l.msg)), { what: 'first result line' })
  return { publicUrl, adminUrl: gateway.adminUrl(), lines, firstResult }
}

describe('start-up diagnosis and readiness', () => {
  it('logs why a dead backend is not usable, and /health shows it while /livez stays 200', async () => {
    const port = await freePort() // listened on, then closed: connections are refused
    const { publicUrl, adminUrl, firstResult } = await gatewayFor(`http://127.0.0.1:${port}`)
    const line = await firstResult()
    expect(line.level).toBe(40) // warn
    expect(line['readiness']).toBe('connection_refused')
    expect(String(line['error'])).toContain('ECONNREFUSED')
    expect(String(line['hint'])).toContain(`nothing listens on port ${port}`)

    const health = await json(`${publicUrl}/health`)
    expect(health.status).toBe(503)
    expect(health.body).toEqual({
      status: 'unavailable',
      backends: [
        {
          name: 'b0',
          usable: false,
          readiness: 'connection_refused',
          up: false,
          healthy: false,
          draining: false,
          models: null,
          metricsAgeMs: null,
        },
      ],
    })
    // The admin listener's answer carries the detail (addresses stay off the public port).
    const adminHealth = await json(`${adminUrl}/health`)
    expect(adminHealth.status).toBe(503)
    const [backend] = adminHealth.body['backends'] as Record<string, unknown>[]
    expect(String(backend?.['lastError'])).toContain('ECONNREFUSED')
    expect(String(backend?.['hint'])).toContain('is vLLM running')

    // Every 503 kvgate makes says when to come back.
    const chat = await request(`${publicUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    })
    expect(chat.statusCode).toBe(503)
    expect(chat.headers['retry-after']).toBe('2')
    expect(((await chat.body.json()) as { error: { code: string } }).error.code).toBe('no_backend_available')
    const models = await request(`${publicUrl}/v1/models`)
    await models.body.dump()
    expect([models.statusCode, models.headers['retry-after']]).toEqual([503, '2'])
    expect(gateway?.ledgerReservedTokens()).toBe(0)

    expect(await json(`${publicUrl}/livez`)).toEqual({ status: 200, body: { status: 'ok' } })
    expect(await json(`${adminUrl}/livez`)).toEqual({ status: 200, body: { status: 'ok' } })
  })

  it('says to drop a /v1 suffix from the backend URL', async () => {
    sim = await startSim({ port: 0, logger: false })
    const { publicUrl, firstResult } = await gatewayFor(`${sim.url}/v1`)
    const line = await firstResult()
    expect(line['readiness']).toBe('metrics_http_error')
    expect(line['error']).toBe('/metrics answered 404')
    expect(line['hint']).toBe(
      `the URL ends in /v1: give vLLM's root URL (${sim.url}); kvgate adds /v1/... and /metrics itself`,
    )
    expect(line.msg).toContain('hint: the URL ends in /v1')
    const health = await json(`${publicUrl}/health`)
    expect((health.body['backends'] as Record<string, unknown>[])[0]?.['readiness']).toBe('metrics_http_error')
  })

  it('names a server that answers /metrics without vLLM metrics', async () => {
    other = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(req.url === '/metrics' ? '# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n' : 'ok')
    })
    await new Promise<void>((resolve) => other?.listen(0, '127.0.0.1', resolve))
    const address = other.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    const { firstResult } = await gatewayFor(`http://127.0.0.1:${port}`)
    const line = await firstResult()
    expect(line['readiness']).toBe('not_vllm')
    expect(String(line['hint'])).toContain('without vllm:* metrics')
  })

  it('logs a good backend as a vLLM with its capacity and models', async () => {
    sim = await startSim({ port: 0, logger: false, numGpuBlocks: 100 })
    const { publicUrl, firstResult } = await gatewayFor(sim.url)
    const line = await firstResult()
    expect(line.level).toBe(30)
    expect(line).toMatchObject({ vllm: true, capacityTokens: 1_600 })
    expect(Array.isArray(line['models']) && (line['models'] as unknown[]).length).toBeGreaterThan(0)
    const health = await json(`${publicUrl}/health`)
    expect(health.status).toBe(200)
    expect((health.body['backends'] as Record<string, unknown>[])[0]).toMatchObject({
      usable: true,
      readiness: 'usable',
    })
  })

  it('writes an access line at info for a pass-through, and keeps probes at debug', async () => {
    sim = await startSim({ port: 0, logger: false })
    const { publicUrl, lines, firstResult } = await gatewayFor(sim.url)
    await firstResult()
    await until(() => gateway?.backends()[0]?.usable || undefined)
    await (await request(`${publicUrl}/v1/models`)).body.dump()
    await (await request(`${publicUrl}/health`)).body.dump()
    const access = await until(() => lines.find((l) => l.msg === 'request answered' && l['path'] === '/v1/models'))
    expect(access).toMatchObject({ level: 30, method: 'GET', status: 200, outcome: 'served', routeClass: 'read-only' })
    expect(typeof access['durationMs']).toBe('number')
    const probe = await until(() => lines.find((l) => l.msg === 'request answered' && l['path'] === '/health'))
    expect(probe.level).toBe(20)
  })
})
