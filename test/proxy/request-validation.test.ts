import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startFakeVllm, type FakeVllm } from './fake-vllm.js'

/** Route logic with inject(): the body is refused before it can wait in the queue or reach a backend. */
describe('request validation and authentication', () => {
  let fake: FakeVllm
  let gateway: Gateway
  beforeAll(async () => {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url }],
        identity: { requireAuth: true, apiKeys: [{ key: 'sk-alice-123', user: 'alice' }] },
        users: [{ name: 'alice' }],
      }),
      logger: false,
    })
  })
  afterAll(async () => {
    await gateway?.close()
    await fake?.close()
  })

  const auth = { authorization: 'Bearer sk-alice-123', 'content-type': 'application/json' }
  const post = (url: string, payload: string, headers: Record<string, string> = auth) =>
    gateway.app.inject({ method: 'POST', url, payload, headers })

  it('answers bad JSON with 400 invalid_json in OpenAI shape', async () => {
    const response = await post('/v1/chat/completions', '{"messages": [')
    expect(response.statusCode).toBe(400)
    const body = response.json<{ error: Record<string, unknown> }>()
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'invalid_json' })
    expect(String(body.error['message'])).toMatch(/^The request body is not valid JSON/)
  })

  it('names the field of a missing or malformed parameter', async () => {
    const cases: [string, unknown, string][] = [
      ['/v1/chat/completions', { model: 'm' }, 'messages'],
      ['/v1/chat/completions', { messages: [] }, 'messages'],
      ['/v1/chat/completions', { messages: [{ content: 'x' }] }, 'messages[0].role'],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }, 'max_tokens'],
      [
        '/v1/chat/completions',
        { messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 1.5 },
        'max_completion_tokens',
      ],
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
      ['/v1/completions', { model: 'm' }, 'prompt'],
      ['/v1/completions', { prompt: [{}] }, 'prompt[0]'],
      ['/v1/completions', { prompt: 'x', n: 0 }, 'n'],
    ]
    for (const [url, body, param] of cases) {
      const response = await post(url, JSON.stringify(body))
      expect(response.statusCode, `${url} ${JSON.stringify(body)}`).toBe(400)
      expect(response.json()).toMatchObject({
        error: { type: 'invalid_request_error', code: 'invalid_request', param },
      })
    }
    expect(fake.received).toEqual([])
  })

  it('refuses a deadline header that is not a positive number', async () => {
    const response = await post('/v1/completions', JSON.stringify({ prompt: 'x' }), {
      ...auth,
      'x-kvgate-deadline-ms': 'soon',
    })
    expect(response.statusCode).toBe(400)
    expect(response.json()).toMatchObject({ error: { param: 'x-kvgate-deadline-ms' } })
  })

  it('answers 401 without a key or with an unknown one when auth is required', async () => {
    const payload = JSON.stringify({ prompt: 'x' })
    const missing = await post('/v1/completions', payload, { 'content-type': 'application/json' })
    expect(missing.statusCode).toBe(401)
    expect(missing.json()).toEqual({
      error: {
        message: 'You did not provide an API key. Pass it as "Authorization: Bearer KEY".',
        type: 'authentication_error',
        param: null,
        code: 'missing_api_key',
      },
    })
    const wrong = await post('/v1/completions', payload, {
      'content-type': 'application/json',
      authorization: 'Bearer sk-nope-000',
    })
    expect(wrong.statusCode).toBe(401)
    expect(wrong.json()).toMatchObject({ error: { code: 'invalid_api_key' } })
  })

  it('counts refused requests: a bad body as invalid_request, a missing key as unauthenticated', async () => {
    const metrics = await gateway.admin.inject({ method: 'GET', url: '/metrics' })
    expect(metrics.body).toMatch(/kvgate_requests_total\{outcome="invalid_request",user="alice"\} \d+/)
    expect(metrics.body).toMatch(/kvgate_requests_total\{outcome="unauthenticated",user="anonymous"\} \d+/)
  })
})
