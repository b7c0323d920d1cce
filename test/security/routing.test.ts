import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { VLLM_ADMIN_PATHS, VLLM_GENERATING_PATHS } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { GENERATING_ROUTES, readRequestTarget } from '../../src/proxy/index.js'
import { type FakeVllm, startFakeVllm } from '../proxy/fake-vllm.js'
import {
  ALICE,
  ALICE_KEY,
  chat,
  type GuardedStack,
  KEYED_IDENTITY,
  metric,
  rawJson,
  servesNormally,
  startGuardedStack,
  until,
} from './support.js'

const MISSING_KEY = {
  error: {
    message: 'You did not provide an API key. Pass it as "Authorization: Bearer KEY".',
    type: 'authentication_error',
    param: null,
    code: 'missing_api_key',
  },
}
const notFound = (method: string, path: string) => ({
  error: {
    message: `Unknown request URL: ${method} ${path}`,
    type: 'invalid_request_error',
    param: null,
    code: 'not_found',
  },
})

/** Spellings of the two completion routes that fell through to the pass-through before (and reached vLLM). */
const CHAT_SPELLINGS = [
  '/v1/./chat/completions',
  '//v1/chat/completions',
  '/v1/%63hat/completions',
  '/v1//chat/completions',
  '/v1/x/../chat/completions',
  '/v1/%2e/chat/completions',
  '/v1%2Fchat%2Fcompletions',
  '/v1/chat/completions/',
  '/v1/chat/completions/.',
  'http://evil.example/v1/chat/completions',
]
const COMPLETION_SPELLINGS = ['//v1/completions', '/./v1/completions', '/v1/completions/', '/%761/completions']

describe('reading a request-target as uvicorn + Starlette would, and more widely', () => {
  it('decodes once, resolves dot segments, collapses slashes and drops a trailing one', () => {
    for (const target of CHAT_SPELLINGS) expect(readRequestTarget(target)?.path, target).toBe('/v1/chat/completions')
    for (const target of COMPLETION_SPELLINGS) expect(readRequestTarget(target)?.path, target).toBe('/v1/completions')
    expect(readRequestTarget('/v1/models?x=1#frag')).toEqual({
      path: '/v1/models',
      encodedPath: '/v1/models',
      search: '?x=1',
    })
    // Decoded once: a doubly encoded path stays encoded, and goes upstream encoded so uvicorn decodes it once.
    expect(readRequestTarget('/v1/%2563hat/completions')).toMatchObject({
      path: '/v1/%63hat/completions',
      encodedPath: '/v1/%2563hat/completions',
    })
    expect(readRequestTarget('/../../etc/passwd')?.path).toBe('/etc/passwd')
    expect(readRequestTarget('/V1/chat/completions')?.path).toBe('/V1/chat/completions') // case-sensitive, as Starlette
  })

  it('refuses what cannot be a path: control characters, invalid UTF-8, non-ASCII bytes, asterisk-form', () => {
    for (const target of ['/v1/chat%00/completions', '/v1/%0d%0ax', '/v1/%ff', '*', '/v1/\u00e9', 'ftp://x/y']) {
      expect(readRequestTarget(target), target).toBeUndefined()
    }
  })

  it('has one generating route descriptor for every vLLM generating path', () => {
    const paths = GENERATING_ROUTES.flatMap((route) => [route.path, ...(route.aliases ?? [])])
    expect([...paths].sort()).toEqual([...VLLM_GENERATING_PATHS].sort())
  })
})

describe('one routing decision on the normalised path, with requireAuth and the real emulator', () => {
  let stack: GuardedStack
  beforeAll(async () => {
    stack = await startGuardedStack({ config: { passthrough: { allow: ['/sim/state'] } } })
  })
  afterAll(async () => stack?.close())

  it('answers 401 to every spelling without a key, and admits every spelling with one', async () => {
    const before = (await metric(stack.adminUrl, 'kvgate_admissions_total{user="alice"}')) ?? 0
    const spellings = [...CHAT_SPELLINGS, ...COMPLETION_SPELLINGS]
    for (const target of spellings) {
      const body = COMPLETION_SPELLINGS.includes(target) ? { prompt: 'hi', max_tokens: 4 } : chat()
      const keyless = await rawJson(stack.url, 'POST', target, body)
      expect({ target, status: keyless.status, body: keyless.json }).toEqual({
        target,
        status: 401,
        body: MISSING_KEY,
      })
      const keyed = await rawJson(stack.url, 'POST', target, body, ALICE)
      expect(keyed.status, `${target}: ${keyed.body}`).toBe(200)
      expect(keyed.headers['x-kvgate-backend']).toBe('sim0')
    }
    // Every one of them went through admission (none through a pass-through).
    expect(await metric(stack.adminUrl, 'kvgate_admissions_total{user="alice"}')).toBe(before + spellings.length)
    expect(await metric(stack.adminUrl, 'kvgate_requests_total{outcome="unauthenticated",user="anonymous"}')).toBe(
      spellings.length,
    )
    await servesNormally(stack)
  })

  it('needs a key on the read-only routes too, and passes them through with one', async () => {
    for (const [method, target, body] of [
      ['GET', '/v1/models', undefined],
      ['GET', '/version', undefined],
      ['POST', '/tokenize', { prompt: 'hello world' }],
      ['POST', '/detokenize', { tokens: [1, 2] }],
      ['GET', '/v1/./models', undefined],
    ] as const) {
      const keyless = await rawJson(stack.url, method, target, body)
      expect({ target, status: keyless.status, body: keyless.json }).toEqual({ target, status: 401, body: MISSING_KEY })
      const keyed = await rawJson(stack.url, method, target, body, ALICE)
      expect(keyed.status, `${target}: ${keyed.body}`).toBe(200)
    }
    const models = await rawJson(stack.url, 'GET', '/v1/models', undefined, ALICE)
    expect(models.json).toMatchObject({ object: 'list', data: [{ id: 'kvgate-sim' }] })
    // kvgate's own /health needs no key: probes have none.
    expect((await rawJson(stack.url, 'GET', '/health')).status).toBe(200)
  })

  it("answers 404 to vLLM's admin routes, the emulator's own and kvgate's admin paths, and forwards none", async () => {
    const faultsBefore = JSON.stringify(await (await fetch(`${stack.sim.url}/sim/faults`)).json())
    const targets = [
      ...VLLM_ADMIN_PATHS,
      '/sim/faults',
      '/sim/../sim/faults',
      '/metrics',
      '/debug/reservations',
      '/docs',
    ]
    for (const target of targets) {
      const path = readRequestTarget(target)?.path ?? target
      const keyed = await rawJson(stack.url, 'POST', target, { errorRate: 1 }, ALICE)
      expect({ target, status: keyed.status, body: keyed.json }).toEqual({
        target,
        status: 404,
        body: notFound('POST', path),
      })
      // Without a key the route table is not even revealed.
      expect((await rawJson(stack.url, 'POST', target, { errorRate: 1 })).status).toBe(401)
    }
    expect(JSON.stringify(await (await fetch(`${stack.sim.url}/sim/faults`)).json())).toBe(faultsBefore)
    expect(await metric(stack.adminUrl, 'kvgate_requests_total{outcome="not_found",user="alice"}')).toBe(targets.length)
    // An allow-listed path is forwarded (with a key), on its normalised spelling.
    const state = await rawJson(stack.url, 'GET', '/sim/./state', undefined, ALICE)
    expect(state.status).toBe(200)
    expect(state.json).toMatchObject({ running: expect.any(Number) })
    expect((await rawJson(stack.url, 'GET', '/sim/state')).status).toBe(401)
    await servesNormally(stack)
  })

  it('counts every request with an outcome, the refused ones included', async () => {
    const text = await (await fetch(`${stack.adminUrl}/metrics`)).text()
    const outcomes = [...text.matchAll(/^kvgate_requests_total\{outcome="([a-z_]+)",user="([^"]+)"\} (\d+)$/gm)]
    const total = outcomes.reduce((sum, m) => sum + Number(m[3]), 0)
    expect(new Set(outcomes.map((m) => m[1]))).toEqual(new Set(['completed', 'served', 'unauthenticated', 'not_found']))
    expect(total).toBeGreaterThan(60)
  })
})

describe('what kvgate decided on is what the backend receives', () => {
  let fake: FakeVllm
  let gateway: Gateway
  let url: string
  beforeAll(async () => {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        metricsPoll: { intervalMs: 20 },
        identity: KEYED_IDENTITY,
        passthrough: { allow: ['/v1/audio/*'] },
      }),
      logger: false,
    })
    url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway.backends()[0]?.usable || undefined)
  })
  afterAll(async () => {
    await gateway?.close()
    await fake?.close()
  })

  it('forwards the normalised path, re-encoded, and the body kvgate parsed, without kvgate’s own headers', async () => {
    fake.received.length = 0
    await rawJson(url, 'POST', '/v1/./%63hat//completions/?trace=1', chat(), {
      ...ALICE,
      'x-kvgate-deadline-ms': '5000',
      'proxy-authorization': 'Basic c2VjcmV0',
      connection: 'close, x-hop',
      'x-hop': 'dropped',
    })
    await rawJson(url, 'POST', '/v1/audio/%2e/transcriptions', { file: 'x' }, ALICE)
    await rawJson(url, 'POST', '/v1/audio/a%25b', { file: 'x' }, ALICE)
    const [completion, allowed, encoded] = fake.received
    expect(completion?.url).toBe('/v1/chat/completions?trace=1')
    for (const header of ['authorization', 'x-kvgate-deadline-ms', 'proxy-authorization', 'x-hop']) {
      expect(completion?.headers[header], header).toBeUndefined()
    }
    expect(allowed?.url).toBe('/v1/audio/transcriptions')
    // `%25` decodes to `%` for routing and goes up re-encoded, so uvicorn's one decoding gives `/v1/audio/a%b`.
    expect(encoded?.url).toBe('/v1/audio/a%25b')
    expect(gateway.ledgerReservedTokens()).toBe(0)
    expect(ALICE_KEY).not.toBe('')
  })
})
