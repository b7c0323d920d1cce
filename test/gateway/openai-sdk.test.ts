import OpenAI, { RateLimitError } from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metricValue, promptOf, scrape, startStack, type Stack } from './stack.js'

/** The official SDK is the client most users have: it must work through kvgate unchanged, 429s included. */
describe('the openai SDK through kvgate', () => {
  let stack: Stack
  let refusing: Stack
  let quota: Stack
  beforeAll(async () => {
    stack = await startStack({ config: { users: [{ name: 'alice' }] } })
    quota = await startStack({
      config: {
        policy: { name: 'tpm' },
        users: [{ name: 'alice', tokensPerMinute: 100_000, requestsPerMinute: 100 }],
      },
    })
    // A queue of length 0: whatever does not fit at once is refused, so every request here is a 429.
    refusing = await startStack({ sim: { numGpuBlocks: 8 }, config: { admission: { maxQueueLength: 0 } } })
  })
  afterAll(async () => {
    await stack?.close()
    await refusing?.close()
    await quota?.close()
  })

  it('sends x-ratelimit-* on the 200s of a user with a quota, before a stream starts', async () => {
    const client = new OpenAI({
      baseURL: `${quota.url}/v1`,
      apiKey: 'sk-no-key',
      defaultHeaders: { 'x-user-id': 'alice' },
    })
    const body = { model: 'kvgate-sim', messages: [{ role: 'user' as const, content: promptOf(20) }], max_tokens: 5 }
    const plain = await client.chat.completions.create(body).withResponse()
    const headers = plain.response.headers
    expect(headers.get('x-ratelimit-limit-requests')).toBe('100')
    expect(headers.get('x-ratelimit-limit-tokens')).toBe('100000')
    // This request is charged already: one request, its prompt and its predicted output.
    expect(headers.get('x-ratelimit-remaining-requests')).toBe('99')
    expect(Number(headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(100_000 - 20)
    expect(headers.get('x-ratelimit-reset-requests')).toMatch(/^[0-9][0-9.hms]*s$/)
    const streamed = await client.chat.completions.create({ ...body, stream: true }).withResponse()
    expect(streamed.response.headers.get('x-ratelimit-remaining-requests')).toBe('98')
    for await (const _chunk of streamed.data) {
      // drained: the headers came before the first chunk
    }
    // A user without a quota (the default user has none) gets none of them.
    const other = new OpenAI({
      baseURL: `${quota.url}/v1`,
      apiKey: 'sk-no-key',
      defaultHeaders: { 'x-user-id': 'bob' },
    })
    const unlimited = await other.chat.completions.create(body).withResponse()
    expect(unlimited.response.headers.get('x-ratelimit-limit-requests')).toBeNull()
    expect(quota.gateway.ledgerReservedTokens()).toBe(0)
  })

  it('creates a chat completion', async () => {
    const client = new OpenAI({
      baseURL: `${stack.url}/v1`,
      apiKey: 'sk-no-key',
      defaultHeaders: { 'x-user-id': 'alice' },
    })
    const completion = await client.chat.completions.create({
      model: 'kvgate-sim',
      messages: [{ role: 'user', content: promptOf(20) }],
      max_tokens: 12,
      // @ts-expect-error vLLM's extension, passed through as is
      ignore_eos: true,
    })
    expect(completion.object).toBe('chat.completion')
    expect(completion.usage?.completion_tokens).toBe(12)
    expect(completion.choices[0]?.message.content?.trim().split(/\s+/)).toHaveLength(12)
  })

  it('streams a chat completion, with usage when asked', async () => {
    const client = new OpenAI({
      baseURL: `${stack.url}/v1`,
      apiKey: 'sk-no-key',
      defaultHeaders: { 'x-user-id': 'alice' },
    })
    const stream = await client.chat.completions.create({
      model: 'kvgate-sim',
      messages: [{ role: 'user', content: promptOf(20) }],
      max_tokens: 9,
      stream: true,
      stream_options: { include_usage: true },
      // @ts-expect-error vLLM's extension
      ignore_eos: true,
    })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    expect(text.trim().split(/\s+/)).toHaveLength(9)
    expect(usage?.completion_tokens).toBe(9)
    const metrics = await scrape(stack.adminUrl)
    expect(metricValue(metrics, 'kvgate_requests_total{outcome="completed",user="alice"}')).toBe(2)
  })

  it('streams a legacy completion', async () => {
    const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-no-key' })
    const stream = await client.completions.create({
      model: 'kvgate-sim',
      prompt: promptOf(5),
      max_tokens: 4,
      stream: true,
    })
    let chunks = 0
    for await (const chunk of stream) if (chunk.choices[0]?.text) chunks++
    expect(chunks).toBeGreaterThan(0)
    expect(chunks).toBeLessThanOrEqual(4)
  })

  it('retries a 429 as many times as maxRetries says, waiting retry-after, then throws RateLimitError', async () => {
    const client = new OpenAI({ baseURL: `${refusing.url}/v1`, apiKey: 'sk-no-key', maxRetries: 1 })
    const startMs = performance.now()
    const error = await client.chat.completions
      .create({ model: 'kvgate-sim', messages: [{ role: 'user', content: promptOf(50) }], max_tokens: 20 })
      .then(
        () => undefined,
        (err: unknown) => err,
      )
    const elapsedMs = performance.now() - startMs
    expect(error).toBeInstanceOf(RateLimitError)
    const rateLimit = error as RateLimitError
    expect(rateLimit.status).toBe(429)
    // OpenAI's convention: code rate_limit_exceeded, type the limit; kvgate's reason in a header and the message.
    expect(rateLimit.code).toBe('rate_limit_exceeded')
    expect(rateLimit.type).toBe('requests')
    expect(rateLimit.param).toBeNull()
    expect(rateLimit.headers?.get('x-kvgate-reject-reason')).toBe('queue_full')
    expect(rateLimit.message).toContain('(kvgate reason: queue_full)')
    const retryAfterMs = Number(rateLimit.headers?.get('retry-after-ms'))
    expect(retryAfterMs).toBeGreaterThanOrEqual(1000)
    // One retry, after the wait kvgate asked for (the SDK's own backoff would be 0.5–1 s).
    expect(elapsedMs).toBeGreaterThanOrEqual(retryAfterMs - 50)
    const metrics = await scrape(refusing.adminUrl)
    expect(metricValue(metrics, 'kvgate_requests_total{outcome="rejected_queue_full",user="anonymous"}')).toBe(2)
  })
})
