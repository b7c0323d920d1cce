import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { metricValue, postJson, scrape, until } from '../gateway/stack.js'
import { startFakeVllm, type FakeVllm } from './fake-vllm.js'

interface Line {
  msg: string
  user?: string
  status?: number
  predictedTokens?: number
}

let fake: FakeVllm | undefined
let gateway: Gateway | undefined
afterEach(async () => {
  await gateway?.close()
  await fake?.close()
  gateway = undefined
  fake = undefined
})

/** A gateway in front of the fake vLLM whose log lines the test reads (`predictedTokens` is the reservation). */
async function start(): Promise<{ url: string; finished: Line[] }> {
  fake = await startFakeVllm()
  const finished: Line[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) {
        if (!text.trim()) continue
        const line = JSON.parse(text) as Line
        if (line.msg === 'request finished') finished.push(line)
      }
      done()
    },
  })
  const config = parseConfig({
    backends: [{ url: fake.url, name: 'fake' }],
    metricsPoll: { intervalMs: 20, staleAfterMs: 2_000 },
    predictor: { coldStartOutputTokens: 1_000 },
    users: [{ name: 'batch', trustOutputHint: true }, { name: 'alice' }],
  })
  gateway = await createGateway({ config, logger: pino(sink) })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  await until(() => gateway?.backends()[0]?.usable || undefined)
  return { url, finished }
}

const body = (extra: Record<string, unknown> = {}) => ({ messages: [{ role: 'user', content: ' hi' }], ...extra })

describe('the client output-length hint (x-kvgate-output-tokens)', () => {
  it("reserves a trusted user's hint, capped by max_tokens, and never forwards the header", async () => {
    const { url, finished } = await start()
    const chat = `${url}/v1/chat/completions`
    const headers = { 'x-user-id': 'batch', 'x-kvgate-output-tokens': '37' }
    expect((await postJson(chat, body(), headers)).status).toBe(200)
    expect((await postJson(chat, body({ max_tokens: 20 }), headers)).status).toBe(200)
    await until(() => (finished.length === 2 ? true : undefined))
    expect(finished.map((l) => l.predictedTokens)).toEqual([37, 20])
    expect(fake?.received.every((r) => r.headers['x-kvgate-output-tokens'] === undefined)).toBe(true)
    expect(metricValue(await scrape(gateway!.adminUrl()), 'kvgate_output_hints_total{result="used"}')).toBe(2)
  })

  it("ignores an untrusted user's hint: the predictor decides, and the metric counts it", async () => {
    const { url, finished } = await start()
    const headers = { 'x-user-id': 'alice', 'x-kvgate-output-tokens': '5' }
    expect((await postJson(`${url}/v1/chat/completions`, body(), headers)).status).toBe(200)
    // A header-named stranger has the default user's settings, which do not trust hints either.
    const stranger = { 'x-user-id': 'mallory', 'x-kvgate-output-tokens': '5' }
    expect((await postJson(`${url}/v1/chat/completions`, body(), stranger)).status).toBe(200)
    await until(() => (finished.length === 2 ? true : undefined))
    // The cold-start figure, then (19/20)² of it and the rest the first answer's 4 tokens: the hints (5) played no part.
    expect(finished.map((l) => l.predictedTokens)).toEqual([1_000, Math.round(1_000 * 0.9025 + 4 * 0.0975)])
    expect(
      metricValue(await scrape(gateway!.adminUrl()), 'kvgate_output_hints_total{result="ignored_untrusted"}'),
    ).toBe(2)
  })

  it("refuses a trusted user's malformed hint with 400 naming the header, before it reaches the backend", async () => {
    const { url } = await start()
    for (const value of ['abc', '-3', '1.5', '']) {
      const response = await postJson(`${url}/v1/chat/completions`, body(), {
        'x-user-id': 'batch',
        'x-kvgate-output-tokens': value,
      })
      expect(response.status).toBe(400)
      expect(JSON.parse(response.text)).toEqual({
        error: {
          message: 'The x-kvgate-output-tokens header must be a whole number of output tokens (0 to 10000000)',
          type: 'invalid_request_error',
          param: 'x-kvgate-output-tokens',
          code: 'invalid_request',
        },
      })
    }
    expect(fake?.received).toHaveLength(0)
    expect(gateway?.ledgerReservedTokens()).toBe(0)
  })

  it('learns nothing from an answer its max_tokens cut short below the prediction (censored)', async () => {
    const { url, finished } = await start()
    // The fake vLLM ends every stream with finish_reason "length" after 4 tokens.
    for (let i = 0; i < 3; i++) {
      const response = await postJson(`${url}/v1/chat/completions`, body({ max_tokens: 4, stream: true }), {
        'x-user-id': 'alice',
      })
      expect(response.status).toBe(200)
    }
    await until(() => (finished.length === 3 ? true : undefined))
    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_predictor_censored_total{model="fake"}')).toBe(3)
    expect(metricValue(text, 'kvgate_predictor_output_tokens{model="fake"}')).toBe(1_000)
    expect(gateway?.ledgerReservedTokens()).toBe(0)
  })
})
