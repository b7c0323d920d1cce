import type { ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createManualClock, type ManualClock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startFakeVllm, type FakeVllm } from '../proxy/fake-vllm.js'
import { postJson, sseData, until } from './stack.js'

const MINUTE_MS = 60_000

/**
 * The gateway's time limits run on its injected clock: a minute-long limit passes in one `advance()`, and
 * nothing fires a moment early on a slow machine. (undici's real-time timers, which these replaced, would
 * have held each of these tests for a real minute.)
 */
describe('forwarding limits and shutdown on a stepped clock', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
    gateway = undefined
  })

  async function start(clock: ManualClock, raw: Record<string, unknown>): Promise<string> {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        // Polls at start only, and never stale or late however far the test moves the clock.
        metricsPoll: { intervalMs: 3_600_000, timeoutMs: 3_600_000, staleAfterMs: 7_200_000 },
        ...raw,
      }),
      clock,
      logger: false,
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)
    return url
  }

  /** A full round trip through the gateway: whatever the clock set off has reached the sockets by then. */
  const roundTrip = async (url: string): Promise<void> => {
    await (await request(`${url}/health`)).body.dump()
  }

  /** A streaming chat request whose client reports what it has read so far (the test's sync point). */
  function streamingClient(url: string) {
    const client = { text: '', done: undefined as Promise<string> | undefined }
    client.done = request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true }),
    }).then(async (response) => {
      for await (const chunk of response.body) client.text += String(chunk)
      return client.text
    })
    return client
  }

  it('ends a request whose headers do not come within headersTimeoutMs as 502, not a moment before', async () => {
    const clock = createManualClock()
    const url = await start(clock, { forwarding: { headersTimeoutMs: MINUTE_MS } })
    fake!.handler = () => {} // never answers
    let settled = false
    const pending = postJson(`${url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 4,
    }).finally(() => (settled = true))
    await until(() => (fake!.received.length === 1 ? true : undefined))

    clock.advance(MINUTE_MS - 1)
    await roundTrip(url)
    expect(settled).toBe(false)
    expect(gateway!.ledgerReservedTokens()).toBeGreaterThan(0)

    clock.advance(1)
    const response = await pending
    expect(response.status).toBe(502)
    expect(JSON.parse(response.text)).toEqual({
      error: {
        message: 'The upstream server failed: no response headers for 60000 ms',
        type: 'server_error',
        param: null,
        code: 'upstream_error',
      },
    })
    await until(() => (fake!.closedEarly === 1 ? true : undefined))
    expect(gateway!.ledgerReservedTokens()).toBe(0)
  })

  it('ends a stream silent for idleTimeoutMs with an error event and [DONE]', async () => {
    const clock = createManualClock()
    const url = await start(clock, { forwarding: { idleTimeoutMs: MINUTE_MS } })
    fake!.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write('data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" a"}}]}\n\n')
    }
    const client = streamingClient(url)
    // The first chunk reached the client: the stream runs, and the backend has been silent since clock 0.
    await until(() => (client.text.includes('" a"') ? true : undefined))
    clock.advance(MINUTE_MS - 1)
    await roundTrip(url)
    expect(client.text).not.toContain('[DONE]')

    clock.advance(1)
    const data = sseData(await client.done!)
    expect(data.at(-1)).toBe('[DONE]')
    expect(JSON.parse(data.at(-2) ?? '{}')).toMatchObject({
      error: { code: 'upstream_error', message: 'The upstream server failed: no response data for 60000 ms' },
    })
    expect(gateway!.ledgerReservedTokens()).toBe(0)
  })

  it('shutdown lets a stream run for the whole grace period on the clock, then aborts it', async () => {
    const clock = createManualClock()
    const url = await start(clock, { server: { shutdownGraceMs: MINUTE_MS } })
    let upstream: ServerResponse | undefined
    const chunk = (word: string) =>
      `data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${word}"}}]}\n\n`
    fake!.handler = (_req, res) => {
      upstream = res
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(chunk(' a'))
    }
    const client = streamingClient(url)
    await until(() => (client.text.includes('" a"') ? true : undefined))
    let closed = false
    const closing = gateway!.close().then(() => (closed = true))

    clock.advance(MINUTE_MS - 1)
    // The stream still flows through a gateway that is shutting down.
    upstream?.write(chunk(' b'))
    await until(() => (client.text.includes('" b"') ? true : undefined))
    expect(closed).toBe(false)

    clock.advance(1)
    await closing
    const data = sseData(await client.done!)
    expect(data.filter((d) => d.includes('"content"'))).toHaveLength(2)
    expect(JSON.parse(data.at(-2) ?? '{}')).toMatchObject({ error: { code: 'shutting_down' } })
    expect(data.at(-1)).toBe('[DONE]')
    expect(gateway!.ledgerReservedTokens()).toBe(0)
  })
})
