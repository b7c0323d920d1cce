import { Writable } from 'node:stream'
import pino from 'pino'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, stream } from './support.js'

/**
 * `kvgate sim` is quiet by default: no line per request at `info`, one at `debug`, and never one for the
 * `/metrics` and `/health` polls a gateway sends many times a second.
 */
function capture(level: string): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString())
      done()
    },
  })
  const logger = pino({ level }, sink)
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  }
}

async function traffic(sim: SimHandle): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await (await request(`${sim.url}/metrics`)).body.text()
    await (await request(`${sim.url}/health`)).body.text()
  }
  await postJson(`${sim.url}/v1/completions`, { prompt: 'hi', max_tokens: 3 })
  await stream(`${sim.url}/v1/chat/completions`, {
    messages: [{ role: 'user', content: 'x' }],
    max_tokens: 3,
    stream: true,
  })
  await (await request(`${sim.url}/v1/models`)).body.text()
}

describe('request logging', () => {
  let sim: SimHandle | undefined
  afterEach(async () => {
    await sim?.close()
    sim = undefined
  })

  it('logs nothing per request at info', async () => {
    const { logger, lines } = capture('info')
    sim = await startSim({ speed: 100, logger })
    await traffic(sim)
    // Start-up lines stay (Fastify's own "Server listening at …"); nothing about the requests.
    expect(lines().map((line) => line['msg'])).toEqual([`Server listening at ${sim.url}`])
  })

  it('logs one line per request at debug, none for /metrics and /health', async () => {
    const { logger, lines } = capture('debug')
    sim = await startSim({ speed: 100, logger })
    await traffic(sim)
    const logged = lines().filter((line) => line['msg'] === 'request')
    expect(logged.map((line) => [line['method'], line['url'], line['statusCode']])).toEqual([
      ['POST', '/v1/completions', 200],
      ['POST', '/v1/chat/completions', 200],
      ['GET', '/v1/models', 200],
    ])
    expect(lines().some((line) => String(line['url']).startsWith('/metrics'))).toBe(false)
    expect(lines().some((line) => String(line['url']).startsWith('/health'))).toBe(false)
  })

  it('an injected fault is answered without an error line; the request line says 500', async () => {
    const { logger, lines } = capture('debug')
    sim = await startSim({ speed: 100, logger, faults: { errorRate: 1 } })
    expect((await postJson(`${sim.url}/v1/completions`, { prompt: 'hi' })).status).toBe(500)
    expect(lines().filter((line) => (line['level'] as number) >= 50)).toEqual([])
    expect(
      lines()
        .filter((line) => line['msg'] === 'request')
        .map((line) => line['statusCode']),
    ).toEqual([500])
  })
})
