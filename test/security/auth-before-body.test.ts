import { monitorEventLoopDelay } from 'node:perf_hooks'
import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { securityWarnings } from '../../src/gateway/startup-warnings.js'
import { type FakeVllm, startFakeVllm } from '../proxy/fake-vllm.js'
import {
  ALICE,
  chat,
  type GuardedStack,
  KEYED_IDENTITY,
  logSink,
  metric,
  rawExchange,
  servesNormally,
  startGuardedStack,
  until,
} from './support.js'

const TWO_MB = 2 * 1024 * 1024

/** The head of a POST whose body is `length` bytes of JSON, without a key (or with `extra` headers). */
const head = (url: string, length: number, extra = '') =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: ${new URL(url).host}\r\ncontent-type: application/json\r\n` +
  `content-length: ${length}\r\n${extra}\r\n`

/** 2 MB of `[[[[…`: nested a million deep, the body that stalled the event loop before. */
const deeplyNested = () => Buffer.alloc(TWO_MB, '[')

describe('the key is checked before any byte of the body is read', () => {
  let stack: GuardedStack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  it('answers a keyless 2 MB deeply nested body 401 while its body is still unsent, without stalling the loop', async () => {
    stack = await startGuardedStack()
    const current = stack
    // The client sends the head and the first 64 KiB only: a 401 before the rest is sent was decided without
    // the body (no parser can have seen a body that has not arrived).
    const body = deeplyNested()
    const exchange = rawExchange(current.url, head(current.url, body.length), [body.subarray(0, 64 * 1024)])
    const refused = await exchange.response
    expect(exchange.sent()).toBeLessThan(body.length)
    expect({ status: refused.status, body: refused.json }).toEqual({
      status: 401,
      body: {
        error: {
          message: 'You did not provide an API key. Pass it as "Authorization: Bearer KEY".',
          type: 'authentication_error',
          param: null,
          code: 'missing_api_key',
        },
      },
    })
    // The rest of the body would never be read: the connection is not kept for another request.
    expect(refused.headers['connection']).toBe('close')
    exchange.socket.destroy()

    // Two hostile clients sending the whole 2 MB, next to a legitimate one: the loop is never blocked for long
    // (a generous bound: this machine is shared), the legitimate requests all succeed.
    const delay = monitorEventLoopDelay({ resolution: 5 })
    delay.enable()
    const hostile = [0, 1].map(() => rawExchange(current.url, head(current.url, body.length), [body]))
    const legit = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const response = await request(`${current.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...ALICE },
          body: JSON.stringify(chat()),
        })
        await response.body.dump()
        return response.statusCode
      }),
    )
    const answers = await Promise.all(hostile.map((h) => h.response))
    delay.disable()
    for (const h of hostile) h.socket.destroy()
    expect(legit).toEqual([200, 200, 200, 200, 200])
    expect(answers.map((a) => a.status)).toEqual([401, 401])
    expect(delay.max / 1e6).toBeLessThan(250)
    expect(current.gateway.backends()[0]?.usable).toBe(true)
    await servesNormally(current)
  })

  it('without keys, refuses the same body 400 at the nesting limit, before the rest of it is sent', async () => {
    stack = await startGuardedStack({ config: { identity: { requireAuth: false } } })
    const body = deeplyNested()
    const exchange = rawExchange(stack.url, head(stack.url, body.length), [body.subarray(0, 64 * 1024)])
    const refused = await exchange.response
    exchange.socket.destroy()
    expect(exchange.sent()).toBeLessThan(body.length)
    expect({ status: refused.status, body: refused.json }).toEqual({
      status: 400,
      body: {
        error: {
          message: 'The request body is refused: arrays and objects nest deeper than 64 levels.',
          type: 'invalid_request_error',
          param: null,
          code: 'json_too_complex',
        },
      },
    })
    expect(refused.headers['connection']).toBe('close')
    expect(await metric(stack.adminUrl, 'kvgate_admissions_total{user="anonymous"}')).toBeUndefined()
    await servesNormally(stack)
  })

  it('needs a key on every route but /health, and logs the refusals only at debug', async () => {
    stack = await startGuardedStack()
    for (const [method, path] of [
      ['POST', '/v1/responses'],
      ['POST', '/v1/embeddings'],
      ['POST', '/invocations'],
      ['POST', '/rerank'],
      ['GET', '/v1/models'],
      ['GET', '/nowhere'],
    ] as const) {
      const response = await request(`${stack.url}${path}`, { method })
      expect((await response.body.json()) as unknown).toMatchObject({ error: { code: 'missing_api_key' } })
      expect(response.statusCode, path).toBe(401)
    }
    const wrong = await request(`${stack.url}/v1/models`, { headers: { authorization: 'Bearer sk-not-a-key-000' } })
    expect(await wrong.body.json()).toEqual({
      error: {
        message: 'Incorrect API key provided.',
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      },
    })
    expect((await request(`${stack.url}/health`)).statusCode).toBe(200)
    const refusals = stack.lines
      .map((line) => JSON.parse(line) as { msg: string; level: number; outcome?: string })
      .filter((r) => r.msg === 'request answered' && r.outcome === 'unauthenticated')
    expect(refusals).toHaveLength(7)
    expect(refusals.every((r) => r.level === 20)).toBe(true)
  })
})

describe('identity from the header or the body only when the operator trusts it', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
    gateway = undefined
  })

  async function start(identity: Record<string, unknown>) {
    fake = await startFakeVllm()
    const sink = logSink()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        metricsPoll: { intervalMs: 20 },
        identity: { ...KEYED_IDENTITY, requireAuth: false, ...identity },
        users: [{ name: 'alice', weight: 5 }],
      }),
      logger: sink.logger,
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)
    return { url, sink }
  }

  const claim = (url: string) =>
    request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': 'alice' },
      body: JSON.stringify({ ...chat(), user: 'alice' }),
    }).then((r) => r.body.dump())

  it('serves a keyless request claiming to be alice as the anonymous user when keys are configured', async () => {
    const { url, sink } = await start({})
    await claim(url)
    const line = sink.records().find((r) => r['msg'] === 'request finished')
    expect(line?.['user']).toBe('anonymous')
    expect(await metric(gateway!.adminUrl(), 'kvgate_requests_total{outcome="completed",user="anonymous"}')).toBe(1)
    expect(
      sink
        .records()
        .filter((r) => r['security'] === true)
        .map((r) => r['msg']),
    ).toEqual(['identity.requireAuth is off: requests without a key are served, as the anonymous user'])
  })

  it('names alice from the header only with trustHeader, and says so at start-up', async () => {
    const { url, sink } = await start({ trustHeader: true })
    await claim(url)
    expect(sink.records().find((r) => r['msg'] === 'request finished')?.['user']).toBe('alice')
    const warnings = sink.records().filter((r) => r['security'] === true && r['level'] === 40)
    expect(warnings.map((r) => r['msg'])).toEqual([
      "identity.trustHeader is on with API keys configured: any client can name any user (and take their weight and quota) with the x-user-id header or the body's user",
      'identity.requireAuth is off: requests without a key are served, as the anonymous user',
    ])
  })

  it('warns about an allow-listed admin route and an exposed admin listener without a token', () => {
    expect(
      securityWarnings(parseConfig({ passthrough: { allow: ['/reset_prefix_cache'] }, admin: { host: '0.0.0.0' } })),
    ).toEqual([
      'passthrough.allow entry /reset_prefix_cache forwards vLLM admin routes to clients: /reset_prefix_cache',
      'the admin listener (/metrics, /debug) binds 0.0.0.0 without admin.token: anyone who reaches port 9090 reads user names and queue contents, and can make kvgate re-read its config (POST /admin/reload)',
    ])
    expect(securityWarnings(parseConfig({}))).toEqual([])
  })
})
