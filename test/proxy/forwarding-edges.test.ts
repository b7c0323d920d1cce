import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { metricValue, postJson, scrape, sseData, until } from '../gateway/stack.js'
import { chatStream, startFakeVllm, type FakeVllm } from './fake-vllm.js'

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'fake',
  messages: [{ role: 'user', content: 'hello there' }],
  max_tokens: 8,
  ...extra,
})

describe('forwarding to an upstream (scripted fake vLLM)', () => {
  let fake: FakeVllm
  let gateway: Gateway | undefined
  let url = ''

  async function start(raw: Record<string, unknown> = {}, waitUsable = true): Promise<void> {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({ backends: [{ url: fake.url, name: 'fake' }], metricsPoll: { intervalMs: 20 }, ...raw }),
      logger: false,
    })
    url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    if (waitUsable) await until(() => gateway?.backends()[0]?.usable || undefined)
  }

  afterEach(async () => {
    await gateway?.close()
    gateway = undefined
    await fake?.close()
  })

  it('never forwards the client key, the identity header or the deadline header, and always asks for usage', async () => {
    await start({ identity: { apiKeys: [{ key: 'sk-alice-123', user: 'alice' }] }, users: [{ name: 'alice' }] })
    const headers = {
      authorization: 'Bearer sk-alice-123',
      'api-key': 'sk-azure-style',
      'x-api-key': 'sk-other-style',
      'x-user-id': 'bob',
      'x-kvgate-deadline-ms': '5000',
      'x-custom': 'kept',
    }
    const streamed = await postJson(`${url}/v1/chat/completions`, chat({ stream: true }), headers)
    expect(streamed.status).toBe(200)
    const plain = await postJson(`${url}/v1/chat/completions`, chat(), headers)
    expect(plain.status).toBe(200)

    const [first, second] = fake.received
    for (const received of [first, second]) {
      expect(received?.headers['authorization']).toBeUndefined()
      expect(received?.headers['api-key']).toBeUndefined()
      expect(received?.headers['x-api-key']).toBeUndefined()
      expect(received?.headers['x-user-id']).toBeUndefined()
      expect(received?.headers['x-kvgate-deadline-ms']).toBeUndefined()
      expect(received?.headers['x-custom']).toBe('kept')
    }
    expect(JSON.parse(first?.body ?? '{}')).toMatchObject({ stream: true, stream_options: { include_usage: true } })
    expect(JSON.parse(second?.body ?? '{}')).not.toHaveProperty('stream_options')

    // The key named alice, so the request was counted as alice's.
    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="alice"}')).toBe(2)
  })

  it('admits a completion route written with a trailing slash instead of passing it through', async () => {
    await start()
    const response = await postJson(`${url}/v1/chat/completions/`, chat())
    expect(response.status).toBe(200)
    // Only admitted routes are counted; the pass-through proxy would have left this at 0.
    expect(
      metricValue(await scrape(gateway!.adminUrl()), 'kvgate_requests_total{outcome="completed",user="anonymous"}'),
    ).toBe(1)
  })

  it('forwards the key when forwardApiKey is set', async () => {
    await start({ identity: { forwardApiKey: true } })
    await postJson(`${url}/v1/chat/completions`, chat(), { authorization: 'Bearer sk-upstream-1' })
    expect(fake.received[0]?.headers['authorization']).toBe('Bearer sk-upstream-1')
  })

  it('strips the usage chunk unless the client asked, and counts tokens from it', async () => {
    await start()
    fake.handler = (_req, res) => chatStream(res, 6, true, 3)
    const without = sseData((await postJson(`${url}/v1/chat/completions`, chat({ stream: true }))).text)
    expect(without.some((d) => d.includes('"usage"'))).toBe(false)
    expect(without.at(-1)).toBe('[DONE]')
    const withUsage = sseData(
      (await postJson(`${url}/v1/chat/completions`, chat({ stream: true, stream_options: { include_usage: true } })))
        .text,
    )
    expect(JSON.parse(withUsage.at(-2) ?? '{}')).toMatchObject({ choices: [], usage: { completion_tokens: 6 } })
    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_tokens_served_total{user="anonymous",kind="completion"}')).toBe(12)
    expect(metricValue(text, 'kvgate_tokens_served_total{user="anonymous",kind="prompt"}')).toBe(6)
  })

  it("re-tells an upstream error before the stream in OpenAI's shape, with its status, message, type and param", async () => {
    await start()
    const vllmError = { error: { message: 'too long', type: 'BadRequestError', param: 'input_tokens', code: 400 } }
    fake.handler = (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify(vllmError))
    }
    const refused = await postJson(`${url}/v1/chat/completions`, chat({ stream: true }))
    expect(refused.status).toBe(400)
    // vLLM's numeric `code` (the status) becomes a string code, as OpenAI's and kvgate's own errors have.
    expect(JSON.parse(refused.text)).toEqual({
      error: { message: 'too long', type: 'BadRequestError', param: 'input_tokens', code: 'invalid_request' },
    })

    fake.handler = (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({ error: { message: 'engine dead', type: 'InternalServerError', param: null, code: 500 } }),
      )
    }
    expect((await postJson(`${url}/v1/chat/completions`, chat())).status).toBe(500)
    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="invalid_request",user="anonymous"}')).toBe(1)
    expect(metricValue(text, 'kvgate_requests_total{outcome="upstream_error",user="anonymous"}')).toBe(1)
    expect(gateway?.ledgerReservedTokens()).toBe(0)
  })

  it('ends a stream cut after it started with an error event and [DONE]', async () => {
    await start()
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(
        'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" a"}}]}\n\n',
      )
      setTimeout(() => res.destroy(), 20)
    }
    const response = await postJson(`${url}/v1/chat/completions`, chat({ stream: true }))
    expect(response.status).toBe(200)
    const data = sseData(response.text)
    expect(data.at(-1)).toBe('[DONE]')
    const error = JSON.parse(data.at(-2) ?? '{}') as { error: { code: string; type: string } }
    expect(error.error).toMatchObject({ code: 'upstream_error', type: 'server_error' })
    expect(gateway?.ledgerReservedTokens()).toBe(0)
  })

  it('cancels the upstream request when the client disconnects mid-stream', async () => {
    await start()
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(
        'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" a"}}]}\n\n',
      )
      // ...and never ends on its own.
    }
    const controller = new AbortController()
    const response = await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat({ stream: true })),
      signal: controller.signal,
    })
    for await (const chunk of response.body) {
      if (String(chunk).includes('" a"')) break
    }
    controller.abort()
    await until(() => (fake.closedEarly === 1 ? true : undefined))
    await until(() => (gateway?.ledgerReservedTokens() === 0 ? true : undefined))
    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="cancelled_streaming",user="anonymous"}')).toBe(1)
  })

  it('drops a queued request whose client left, and answers 429 with retry-after past the deadline', async () => {
    await start({ admission: { earlyReject: false } })
    fake.usage = 1 // full: everything queues
    await until(() => (gateway?.backends()[0]?.usedTokens === 4096 ? true : undefined))

    const controller = new AbortController()
    const pending = request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat()),
      signal: controller.signal,
    }).catch(() => undefined)
    await until(() => (gateway?.queueDepth() === 1 ? true : undefined))
    controller.abort()
    await pending
    await until(() => (gateway?.queueDepth() === 0 ? true : undefined))

    const rejected = await postJson(`${url}/v1/chat/completions`, chat(), { 'x-kvgate-deadline-ms': '100' })
    expect(rejected.status).toBe(429)
    expect(rejected.headers['x-kvgate-reject-reason']).toBe('queue_deadline_exceeded')
    expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(Number(rejected.headers['retry-after'])).toBeLessThanOrEqual(60)
    expect(Number(rejected.headers['retry-after-ms'])).toBeGreaterThanOrEqual(1000)
    const body = JSON.parse(rejected.text) as { error: { type: string; code: string; param: null; message: string } }
    // OpenAI's 429: code rate_limit_exceeded, type the limit (KV capacity is tokens); kvgate's reason in the message.
    expect(body.error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded', param: null })
    expect(body.error.message).toMatch(/try again in .*\(kvgate reason: queue_deadline_exceeded\)$/)

    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="cancelled_queued",user="anonymous"}')).toBe(1)
    expect(metricValue(text, 'kvgate_requests_total{outcome="rejected_deadline",user="anonymous"}')).toBe(1)
    expect(fake.received.filter((r) => r.url.startsWith('/v1/'))).toEqual([])
    expect(gateway?.ledgerReservedTokens()).toBe(0)
  })

  it('is not ready and answers 503 while no backend is usable', async () => {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: 'http://127.0.0.1:9', name: 'dead' }],
        metricsPoll: { intervalMs: 20, timeoutMs: 100 },
      }),
      logger: false,
    })
    url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => ((gateway?.backends()[0]?.pollErrors ?? 0) > 0 ? true : undefined))
    expect((await request(`${url}/health`)).statusCode).toBe(503)
    const refused = await postJson(`${url}/v1/chat/completions`, chat())
    expect(refused.status).toBe(503)
    expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'no_backend_available' } })
    const models = await request(`${url}/v1/models`)
    expect(models.statusCode).toBe(503)
    await models.body.dump()
  })

  it('counts the prompt with the backend tokenizer when exactPromptTokens is set, and falls back when it fails', async () => {
    await start({ admission: { exactPromptTokens: true } })
    let held: import('node:http').ServerResponse | undefined
    let tokenizeStatus = 200
    fake.handler = (req, res) => {
      if (req.url === '/tokenize') {
        res.writeHead(tokenizeStatus, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ count: 1234, max_model_len: 8192, tokens: [] }))
        return
      }
      held = res // keep the request in flight so its reservation can be read
    }
    const reservedPrompt = async (): Promise<number> => {
      const pending = postJson(`${url}/v1/chat/completions`, chat({ model: 'fake', n: 2 }))
      await until(() => held)
      const debug = (await (await request(`${gateway!.adminUrl()}/debug/reservations`)).body.json()) as {
        reservations: { promptTokens: number }[]
      }
      held?.writeHead(200, { 'content-type': 'application/json' })
      held?.end('{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}')
      held = undefined
      expect((await pending).status).toBe(200)
      return debug.reservations[0]?.promptTokens ?? -1
    }
    expect(await reservedPrompt()).toBe(1234 * 2)
    const tokenizeCall = fake.received.find((r) => r.url === '/tokenize')
    expect(JSON.parse(tokenizeCall?.body ?? '{}')).toMatchObject({ model: 'fake', add_generation_prompt: true })

    tokenizeStatus = 500
    // "hello there" as the local counter sees it: 1 role marker + 2 words + the generation prompt, twice.
    expect(await reservedPrompt()).toBe(4 * 2)
  })

  it('passes other vLLM routes through without the client key or identity header', async () => {
    await start()
    fake.handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ path: req.url, method: req.method }))
    }
    // /v1/models is kvgate's own (the union of the pools); /version is one of the routes passed through.
    const version = await request(`${url}/version?x=1`, {
      headers: { authorization: 'Bearer sk-1', 'api-key': 'sk-2', 'x-api-key': 'sk-3', 'x-user-id': 'bob' },
    })
    expect(await version.body.json()).toEqual({ path: '/version?x=1', method: 'GET' })
    const tokenize = await request(`${url}/tokenize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hi' }),
    })
    expect(await tokenize.body.json()).toEqual({ path: '/tokenize', method: 'POST' })
    expect(fake.received[0]?.headers['authorization']).toBeUndefined()
    expect(fake.received[0]?.headers['api-key']).toBeUndefined()
    expect(fake.received[0]?.headers['x-api-key']).toBeUndefined()
    expect(fake.received[0]?.headers['x-user-id']).toBeUndefined()
    expect(fake.received[1]?.body).toBe('{"prompt":"hi"}')
  })
})
