import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { rerankRoute, responsesRoute, scoreRoute, embeddingsRoute } from '../../src/proxy/index.js'
import { metricValue, postJson, scrape, sseData, until } from '../gateway/stack.js'
import { type FakeVllm, startFakeVllm } from './fake-vllm.js'

const tokens = createWordPieceTokenCounter()

describe('route descriptors read each body shape into a need', () => {
  it('counts pooling inputs, score pairs and rerank documents as sequences with no output', () => {
    expect(embeddingsRoute.parse({ input: ['hello world', 'the cache'] }, tokens)).toMatchObject({
      sequences: 2,
      promptTokens: 4,
      maxTokens: undefined,
    })
    expect(embeddingsRoute.parse({ input: [[1, 2, 3], [4]] }, tokens)).toMatchObject({ sequences: 2, promptTokens: 4 })
    expect(scoreRoute.parse({ text_1: 'query', text_2: ['a b', 'c'] }, tokens)).toMatchObject({
      sequences: 2,
      promptTokens: 1 + 2 + 1 + 1,
    })
    expect(() => scoreRoute.parse({ text_1: ['a', 'b'], text_2: ['a', 'b', 'c'] }, tokens)).toThrow(
      "'text_1' must hold one item or as many as the other side",
    )
    expect(rerankRoute.parse({ query: 'q', documents: ['a', 'b c'] }, tokens)).toMatchObject({
      sequences: 2,
      promptTokens: 2 + 3,
    })
    expect(embeddingsRoute.predictOutput?.(embeddingsRoute.parse({ input: 'x' }, tokens), {} as never)).toBe(0)
  })

  it('reads a Responses input, and refuses background responses it could not hold admitted', () => {
    const request = responsesRoute.parse(
      {
        input: [{ role: 'user', content: [{ type: 'input_text', text: 'hello world' }] }],
        instructions: 'be brief',
        max_output_tokens: 50,
      },
      tokens,
    )
    expect(request).toMatchObject({ promptTokens: 2 + 1 + 2 + 1, maxTokens: 50, sequences: 1, clientWantsUsage: true })
    expect(() => responsesRoute.parse({ input: 'x', background: true }, tokens)).toThrow(
      'kvgate admits a response for as long as it is open: send the request without background: true',
    )
  })
})

describe('the Responses API and the pooling routes through admission', () => {
  let fake: FakeVllm
  let gateway: Gateway
  let url: string
  beforeAll(async () => {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({ backends: [{ url: fake.url, name: 'fake' }], metricsPoll: { intervalMs: 20 } }),
      logger: false,
    })
    url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway.backends()[0]?.usable || undefined)
  })
  afterAll(async () => {
    await gateway?.close()
    await fake?.close()
  })

  it('streams a Responses stream to its end (response.completed, no [DONE]) and counts its usage', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const event = (type: string, extra: Record<string, unknown> = {}) =>
        res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...extra })}\n\n`)
      event('response.created', { response: { id: 'resp_1' } })
      for (const delta of [' a', ' b', ' c']) event('response.output_text.delta', { delta })
      event('response.completed', { response: { id: 'resp_1', usage: { input_tokens: 7, output_tokens: 3 } } })
      res.end()
    }
    const response = await postJson(`${url}/v1/responses`, { input: 'hello', stream: true, max_output_tokens: 10 })
    expect(response.status).toBe(200)
    const data = sseData(response.text)
    expect(data.map((d) => JSON.parse(d).type)).toEqual([
      'response.created',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.completed',
    ])
    // The request went upstream as sent (the Responses API has no stream_options to add), naming the model
    // the gateway routed for, since the body named none.
    expect(JSON.parse(fake.received.at(-1)?.body ?? '{}')).toEqual({
      model: 'fake',
      input: 'hello',
      stream: true,
      max_output_tokens: 10,
    })
    await until(() => (gateway.ledgerReservedTokens() === 0 ? true : undefined))
    const text = await scrape(gateway.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="anonymous"}')).toBe(1)
    expect(metricValue(text, 'kvgate_tokens_served_total{user="anonymous",kind="completion"}')).toBe(3)
    expect(metricValue(text, 'kvgate_tokens_served_total{user="anonymous",kind="prompt"}')).toBe(7)
  })

  it('admits an embeddings request on its inputs alone and forwards it on its path', async () => {
    fake.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ object: 'list', data: [], usage: { prompt_tokens: 4, total_tokens: 4 } }))
    }
    const before = fake.received.length
    const response = await postJson(`${url}/v1/embeddings`, { input: ['hello world', 'the cache'] })
    expect(response.status).toBe(200)
    expect(fake.received[before]?.url).toBe('/v1/embeddings')
    const rerank = await postJson(`${url}/v2/rerank`, { query: 'q', documents: ['a'] })
    expect(rerank.status).toBe(200)
    expect(fake.received[before + 1]?.url).toBe('/v2/rerank')
    const refused = await postJson(`${url}/v1/embeddings`, { model: 'm' })
    expect(refused.status).toBe(400)
    expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'invalid_request' } })
    expect(fake.received).toHaveLength(before + 2)
    await until(() => (gateway.ledgerReservedTokens() === 0 ? true : undefined))
  })
})
