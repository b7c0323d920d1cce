import type { ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Agent, request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { type FakeVllm, startFakeVllm } from '../proxy/fake-vllm.js'
import { rawExchange, until } from './support.js'

const SHUTTING_DOWN = {
  error: { message: 'kvgate is shutting down.', type: 'service_unavailable', param: null, code: 'shutting_down' },
}
const chunk = (word: string) =>
  `data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${word}"}}]}\n\n`

/**
 * From the moment shutdown begins until the listener closes, a new request is answered 503 `shutting_down`
 * with `retry-after` and `connection: close`, however it arrives: on a new connection, on a kept-alive one,
 * or written but not yet read. Before, kept-alive connections were closed at once (a reset for a request on
 * its way) and new connections were refused while streams finished.
 */
describe('shutdown answers instead of resetting', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
    gateway = undefined
  })

  it('answers 503 with retry-after on new, kept-alive and half-sent requests while a stream finishes', async () => {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        metricsPoll: { intervalMs: 20 },
        server: { shutdownGraceMs: 60_000 },
      }),
      logger: false,
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)

    // A stream in flight, held by the backend until the test lets it finish.
    let upstream: ServerResponse | undefined
    fake.handler = (_req, res) => {
      upstream = res
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(chunk(' a'))
    }
    let streamed = ''
    const stream = request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }),
    }).then(async (response) => {
      for await (const part of response.body) streamed += String(part)
      return response.statusCode
    })
    await until(() => (streamed.includes('" a"') ? true : undefined))

    // A kept-alive connection, idle when shutdown begins.
    const keepAlive = new Agent({ connections: 1, keepAliveTimeout: 60_000 })
    const warm = await request(`${url}/health`, { dispatcher: keepAlive })
    await warm.body.dump()
    // A request whose head is on the wire but whose body is still coming when shutdown begins.
    const halfSent = connect(Number(new URL(url).port), '127.0.0.1')
    await new Promise((resolve) => halfSent.once('connect', resolve))

    let closed = false
    const closing = gateway.close().then(() => (closed = true))

    // Written now, read by the gateway whenever it gets to it: a 503 all the same, never a reset.
    const halfSentAnswer = new Promise<string>((resolve) => {
      let text = ''
      halfSent.on('data', (data: Buffer) => {
        text += data.toString()
        if (text.includes('shutting_down')) resolve(text)
      })
    })
    halfSent.write('POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n')
    halfSent.write('content-length: 15\r\n\r\n{"prompt":')
    const [fresh, kept, probe, half] = await Promise.all([
      request(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
      }),
      request(`${url}/v1/models`, { dispatcher: keepAlive }),
      rawExchange(url, 'GET /health HTTP/1.1\r\nhost: x\r\n\r\n').response,
      halfSentAnswer,
    ])
    for (const response of [fresh, kept]) {
      expect({ status: response.statusCode, body: await response.body.json() }).toEqual({
        status: 503,
        body: SHUTTING_DOWN,
      })
      expect(response.headers['retry-after']).toBe('1')
      expect(response.headers['retry-after-ms']).toBe('1000')
      expect(response.headers['connection']).toBe('close')
    }
    // kvgate's own /health answers 503 too, so a load balancer takes the instance out.
    expect(probe.status).toBe(503)
    expect(half).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/)
    expect(half).toMatch(/\r\nretry-after: 1\r\n/)
    halfSent.destroy()

    // The stream still runs through the shutdown, and shutdown waits for it.
    expect(closed).toBe(false)
    upstream?.write(chunk(' b'))
    upstream?.end('data: [DONE]\n\n')
    expect(await stream).toBe(200)
    expect(streamed).toContain('" b"')
    await closing
    expect(gateway.ledgerReservedTokens()).toBe(0)
    // Now the listener is closed: a new connection is refused, as there is nothing left to answer it.
    await expect(request(`${url}/health`)).rejects.toThrow()
    await keepAlive.close()
  })
})
