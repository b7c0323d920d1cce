import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { until } from '../gateway/stack.js'
import { startFakeVllm, type FakeVllm } from './fake-vllm.js'

// One big SSE event: a few of these fill the client socket's buffers quickly.
const BIG_EVENT = `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'w'.repeat(64 * 1024) } }] })}\n\n`

describe('a streaming client that stops reading', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  let client: Socket | undefined

  afterEach(async () => {
    client?.destroy()
    await gateway?.close()
    gateway = undefined
    await fake?.close()
  })

  /** A fake vLLM that streams big events for as long as kvgate reads them, a gateway, and a raw client that
   * sends its request and never reads the answer. Resolves once kvgate has stopped reading upstream. */
  async function stalledStream(config: Record<string, unknown>): Promise<Gateway> {
    fake = await startFakeVllm()
    let upstreamBackedUp = false
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      // Write until kvgate stops reading (it waits for its stalled client), then keep offering on drain.
      const pump = (): void => {
        while (!res.destroyed && res.write(BIG_EVENT)) {
          // keep writing while the socket takes it
        }
        if (res.destroyed) return
        upstreamBackedUp = true
        res.once('drain', pump)
      }
      pump()
    }
    const gw = await createGateway({
      config: parseConfig({ backends: [{ url: fake.url, name: 'fake' }], metricsPoll: { intervalMs: 20 }, ...config }),
      logger: false,
    })
    gateway = gw
    const url = new URL(await gw.listen({ port: 0, host: '127.0.0.1' }))
    await until(() => gw.backends()[0]?.usable || undefined)
    const body = JSON.stringify({
      model: 'fake',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 8,
      stream: true,
    })
    client = connect(Number(url.port), '127.0.0.1')
    client.pause()
    client.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    )
    await until(() => (upstreamBackedUp ? true : undefined))
    expect(gw.ledgerReservedTokens()).toBeGreaterThan(0)
    return gw
  }

  it('does not hold shutdown (or its reservation) past the grace period while the relay waits for drain', async () => {
    const gw = await stalledStream({ server: { shutdownGraceMs: 100 } })
    // Shutdown must abort the stream after its 100 ms grace and finish, not wait for the client forever.
    let timer: NodeJS.Timeout | undefined
    const outcome = await Promise.race([
      gw.close().then(() => 'closed' as const),
      new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 3_000))),
    ])
    clearTimeout(timer)
    if (outcome === 'hung') client?.destroy() // lets the hung close() finish so afterEach can clean up
    expect(outcome).toBe('closed')
    expect(gw.ledgerReservedTokens()).toBe(0)
  })

  it('ends the request and releases its reservation when the client reads nothing for forwarding.idleTimeoutMs', async () => {
    const gw = await stalledStream({ forwarding: { idleTimeoutMs: 300 } })
    await until(() => (gw.ledgerReservedTokens() === 0 ? true : undefined), 5_000)
    await until(() => (fake?.closedEarly === 1 ? true : undefined), 5_000)
    const metrics = await (await fetch(`${gw.adminUrl()}/metrics`)).text()
    expect(metrics).toContain('kvgate_requests_total{outcome="cancelled_streaming",user="anonymous"} 1')
  })
})
