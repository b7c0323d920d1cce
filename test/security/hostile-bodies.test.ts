import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createManualClock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { type FakeVllm, startFakeVllm } from '../proxy/fake-vllm.js'
import {
  ALICE,
  chat,
  type GuardedStack,
  metric,
  rawExchange,
  rawJson,
  servesNormally,
  startGuardedStack,
  until,
} from './support.js'

const invalid = (message: string, param: string | null, code = 'invalid_request') => ({
  error: { message, type: 'invalid_request_error', param, code },
})

describe('malformed and hostile bodies are refused in OpenAI shape before admission', () => {
  let stack: GuardedStack
  beforeAll(async () => {
    stack = await startGuardedStack({ config: { limits: { maxJsonElements: 100_000, bodyLimitBytes: 1024 * 1024 } } })
  })
  afterAll(async () => stack?.close())
  afterEach(() => {
    expect(stack.gateway.ledgerReservedTokens()).toBe(0)
  })
  /** Admissions so far: a refused body must not add one. */
  const admitted = async () => (await metric(stack.adminUrl, 'kvgate_admissions_total{user="alice"}')) ?? 0

  const post = (body: string, headers: Record<string, string> = {}) =>
    request(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ALICE, ...headers },
      body,
    }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as unknown, headers: r.headers }))

  it('names the field of every malformed shape (a 500 and a 502 before)', async () => {
    const nested = `{"messages":[{"role":"user","content":${'['.repeat(10_000)}${']'.repeat(10_000)}}]}`
    const cases: [string, number, unknown][] = [
      [
        JSON.stringify({ messages: [{ role: 'user', content: [null] }] }),
        400,
        invalid('body.messages.0.content.0: must be object', 'messages[0].content[0]'),
      ],
      [
        JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 5 }] }] }),
        400,
        invalid('body.messages.0.content.0.text: must be string', 'messages[0].content[0].text'),
      ],
      [
        JSON.stringify({ messages: [{ role: 'user', content: { text: 'x' } }] }),
        400,
        invalid('body.messages.0.content: must be string or array or null', 'messages[0].content'),
      ],
      [JSON.stringify({ messages: 'hi' }), 400, invalid('body.messages: must be array', 'messages')],
      [JSON.stringify([1, 2]), 400, invalid('body: must be object', null)],
      [
        nested,
        400,
        invalid(
          'The request body is refused: arrays and objects nest deeper than 64 levels.',
          null,
          'json_too_complex',
        ),
      ],
      [
        `{"messages":[{"role":"user","content":"x"}],"n":[${'0,'.repeat(100_000)}0]}`,
        400,
        invalid('The request body is refused: it has more than 100000 elements.', null, 'json_too_complex'),
      ],
      [
        '{"messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true}}',
        400,
        invalid(
          'The request body is not valid JSON: Object contains forbidden prototype property',
          null,
          'invalid_json',
        ),
      ],
      ['', 400, invalid('The request body is not valid JSON: the body is empty', null, 'invalid_json')],
    ]
    const before = await admitted()
    for (const [body, status, expected] of cases) {
      const response = await post(body)
      expect({ sent: body.slice(0, 60), status: response.status, body: response.body }).toEqual({
        sent: body.slice(0, 60),
        status,
        body: expected,
      })
    }
    expect(await admitted()).toBe(before)
    await servesNormally(stack)
  })

  it('accepts only a positive decimal integer as the deadline header (0x10 passed before)', async () => {
    const before = await admitted()
    for (const value of ['0x10', '1e3', '-5', '10.5', '0', ' ', 'Infinity', '12abc', '1,2']) {
      const response = await post(JSON.stringify(chat()), { 'x-kvgate-deadline-ms': value })
      expect({ value, status: response.status, body: response.body }).toEqual({
        value,
        status: 400,
        body: invalid(
          'The x-kvgate-deadline-ms header must be a positive whole number of milliseconds (decimal digits only)',
          'x-kvgate-deadline-ms',
        ),
      })
    }
    expect(await admitted()).toBe(before)
    await servesNormally(stack)
  })

  it('refuses a declared body above the limit before reading it, and one that grows past it while read', async () => {
    const limit = stack.gateway.config().limits.bodyLimitBytes
    const declared = rawExchange(
      stack.url,
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${ALICE.authorization}\r\n` +
        `content-type: application/json\r\ncontent-length: ${limit + 1}\r\n\r\n{`,
    )
    const refused = await declared.response
    declared.socket.destroy()
    expect({ status: refused.status, body: refused.json }).toEqual({
      status: 413,
      body: invalid(`The request body exceeds ${limit} bytes.`, null, 'payload_too_large'),
    })
    expect(refused.headers['connection']).toBe('close')
    // Chunked, so no length is declared: refused at the chunk that passes the limit.
    const chunk = Buffer.alloc(64 * 1024, ' ')
    const chunks = Array.from({ length: 40 }, () => `${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`)
    const streamed = rawExchange(
      stack.url,
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${ALICE.authorization}\r\n` +
        'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
      chunks,
    )
    const grown = await streamed.response
    streamed.socket.destroy()
    expect(grown.status).toBe(413)
    expect(grown.json).toEqual(invalid(`The request body exceeds ${limit} bytes.`, null, 'payload_too_large'))
    await servesNormally(stack)
  })

  it("answers Node's own refusals in OpenAI's shape: a request line it cannot parse, headers too large", async () => {
    const badLine = await rawExchange(stack.url, 'NOT A REQUEST\r\n\r\n').response
    expect({ status: badLine.status, body: badLine.json }).toEqual({
      status: 400,
      body: invalid('The HTTP request could not be parsed.', null, 'bad_http_request'),
    })
    const huge = await rawExchange(stack.url, `GET /health HTTP/1.1\r\nhost: x\r\nx-pad: ${'a'.repeat(20_000)}\r\n\r\n`)
      .response
    expect({ status: huge.status, body: huge.json }).toEqual({
      status: 431,
      body: invalid('The request headers are too large.', null, 'request_header_fields_too_large'),
    })
    expect(
      await metric(stack.adminUrl, 'kvgate_requests_total{outcome="invalid_request",user="anonymous"}'),
    ).toBeGreaterThanOrEqual(2)
    await servesNormally(stack)
  })

  it('takes a body whose shape is right but whose prompt is a non-text part, as vLLM does', async () => {
    const response = await rawJson(
      stack.url,
      'POST',
      '/v1/chat/completions',
      chat('', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }),
      ALICE,
    )
    // Admitted on its text (none here) and answered by the emulator, which reads text parts only.
    expect(response.status).toBe(200)
    expect(stack.gateway.ledgerReservedTokens()).toBe(0)
  })
})

describe('a body that arrives too slowly', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
  })

  it('gets 408 after limits.bodyTimeoutMs on the clock, not a moment before (it held its socket forever)', async () => {
    const clock = createManualClock()
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        metricsPoll: { intervalMs: 3_600_000, timeoutMs: 3_600_000, staleAfterMs: 7_200_000 },
        healthCheck: { intervalMs: 3_600_000, timeoutMs: 3_600_000 },
        limits: { bodyTimeoutMs: 30_000 },
      }),
      clock,
      logger: false,
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)
    // 10 bytes now, and the rest never: the client of the issue sent 10 bytes every 5 s.
    const slow = rawExchange(
      url,
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n',
      ['{"message'],
    )
    let answered = false
    void slow.response.then(() => {
      answered = true
    })
    await until(() => (slow.sent() > 100 ? true : undefined))
    // The parser has the first bytes (the request is in admission's lifecycle) before the clock moves.
    await until(async () => {
      const debug = (await (await fetch(`${gateway!.adminUrl()}/debug/reservations`)).json()) as {
        totals: { requestsStarted: number }
      }
      return debug.totals.requestsStarted === 1 ? true : undefined
    })
    clock.advance(29_999)
    await (await request(`${url}/health`)).body.dump()
    expect(answered).toBe(false)
    clock.advance(1)
    const response = await slow.response
    slow.socket.destroy()
    expect({ status: response.status, body: response.json }).toEqual({
      status: 408,
      body: invalid('The request body did not arrive within 30000 ms.', null, 'request_timeout'),
    })
    expect(response.headers['connection']).toBe('close')
    expect(fake.received).toEqual([])
    expect(gateway.ledgerReservedTokens()).toBe(0)
  })
})
