import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startFakeVllm, type FakeVllm } from '../proxy/fake-vllm.js'
import { metricValue, postJson, scrape, sseData, until } from './stack.js'

const chat = (maxTokens: number, stream = false) =>
  JSON.stringify({ messages: [{ role: 'user', content: ' hello' }], max_tokens: maxTokens, stream })

/** A stream of `tokens` chunks, one every `everyMs`, then usage and [DONE]. */
function slowStream(tokens: number, everyMs: number) {
  return (_req: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    let sent = 0
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer)
      if (sent < tokens) {
        sent++
        res.write(`data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" w"}}]}\n\n`)
        return
      }
      clearInterval(timer)
      res.write(
        `data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":${tokens}}}\n\n`,
      )
      res.end('data: [DONE]\n\n')
    }, everyMs)
  }
}

function post(url: string, body: string, headers: Record<string, string> = {}) {
  return request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  }).then(async (response) => ({
    status: response.statusCode,
    text: await response.body.text(),
    headers: response.headers,
  }))
}

describe('gateway lifecycle', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
    gateway = undefined
    fake = undefined
  })

  async function start(raw: Record<string, unknown>, logger: pino.Logger | false = false): Promise<string> {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({ backends: [{ url: fake.url, name: 'fake' }], metricsPoll: { intervalMs: 20 }, ...raw }),
      logger,
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)
    return url
  }

  it('reload switches policy and identity without dropping queued requests', async () => {
    const base = {
      users: [{ name: 'alice' }, { name: 'carol' }],
      identity: { apiKeys: [{ key: 'sk-alice-123', user: 'alice' }] },
      policy: { name: 'fifo' },
      admission: { earlyReject: false },
    }
    const url = await start(base)
    fake!.usage = 1 // full: requests wait
    await until(() => (gateway?.backends()[0]?.usedTokens === 4096 ? true : undefined))
    const queued = [1, 2, 3].map(() => post(url, chat(5), { authorization: 'Bearer sk-alice-123' }))
    await until(() => (gateway?.queueDepth() === 3 ? true : undefined))

    gateway!.reload(
      parseConfig({
        ...base,
        backends: [{ url: fake!.url, name: 'fake' }],
        identity: {
          apiKeys: [
            { key: 'sk-alice-123', user: 'alice' },
            { key: 'sk-carol-456', user: 'carol' },
          ],
        },
        policy: { name: 'vtc', options: {} },
      }),
    )
    expect(gateway!.queueDepth()).toBe(3)
    expect(gateway!.config().policy.name).toBe('vtc')

    fake!.usage = 0
    const results = await Promise.all(queued)
    expect(results.map((r) => r.status)).toEqual([200, 200, 200])
    // The new key is known after the reload.
    expect((await post(url, chat(5), { authorization: 'Bearer sk-carol-456' })).status).toBe(200)
    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="alice"}')).toBe(3)
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="carol"}')).toBe(1)
    // The new policy's state is what the policy gauges show.
    expect(metricValue(text, 'kvgate_policy_virtual_tokens{user="alice"}')).toBeGreaterThan(0)
    expect(gateway!.ledgerReservedTokens()).toBe(0)
  })

  it('shutdown answers 503 to the queue and lets a running stream finish', async () => {
    const url = await start({ server: { shutdownGraceMs: 5000 }, admission: { earlyReject: false } })
    fake!.handler = slowStream(10, 30)
    // 90% used: room for one request of ~100 tokens after the 5% headroom, not two.
    fake!.usage = 0.9
    await until(() => (gateway?.backends()[0]?.usedTokens === 3686 ? true : undefined))
    const running = post(url, chat(100, true))
    await until(() => (fake!.received.length === 1 ? true : undefined))
    const waiting = post(url, chat(100, true))
    await until(() => (gateway?.queueDepth() === 1 ? true : undefined))

    const closed = gateway!.close()
    const refused = await waiting
    expect(refused.status).toBe(503)
    expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'shutting_down', type: 'service_unavailable' } })
    const finished = await running
    expect(finished.status).toBe(200)
    const data = sseData(finished.text)
    expect(data.at(-1)).toBe('[DONE]')
    expect(data.filter((d) => d.includes('" w"'))).toHaveLength(10)
    await closed
    expect(gateway!.ledgerReservedTokens()).toBe(0)
  })

  it('shutdown aborts a stream still running after the grace period, with an error event', async () => {
    const lines: { msg: string; outcome?: string }[] = []
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line))
        done()
      },
    })
    const url = await start({ server: { shutdownGraceMs: 100 } }, pino(sink))
    fake!.handler = slowStream(1000, 20)
    const running = post(url, chat(1000, true))
    await until(() => (fake!.received.length === 1 ? true : undefined))
    await gateway!.close()
    const finished = await running
    const data = sseData(finished.text)
    expect(data.at(-1)).toBe('[DONE]')
    // kvgate cut it, not the backend: its own error and outcome, not upstream_error.
    expect(JSON.parse(data.at(-2) ?? '{}')).toMatchObject({ error: { code: 'shutting_down' } })
    expect(lines.find((l) => l.msg === 'request finished')?.outcome).toBe('cancelled_shutdown')
    expect(gateway!.ledgerReservedTokens()).toBe(0)
  })

  it('starts the emulator in-process when no backend is configured, and says so first', async () => {
    const lines: { msg: string }[] = []
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n'))
          if (line.trim()) lines.push(JSON.parse(line) as { msg: string })
        done()
      },
    })
    gateway = await createGateway({ config: parseConfig({}), logger: pino(sink) })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    expect(lines[0]?.msg).toMatch(/no backend configured: starting the built-in vLLM emulator/)
    await until(() => gateway?.backends()[0]?.usable || undefined)
    const response = await postJson(`${url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
    })
    expect(response.status).toBe(200)
    const models = await request(`${url}/v1/models`)
    expect(((await models.body.json()) as { data: { id: string }[] }).data[0]?.id).toBe('kvgate-sim')
  })
})
