import OpenAI, { RateLimitError } from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metricValue, promptOf, scrape, startStack, type Stack } from './stack.js'

/** The official SDK is the client most users have: it must work through kvgate unchanged, 429s included. */
describe('the openai SDK through kvgate', () => {
  let stack: Stack
  let refusing: Stack
  beforeAll(async () => {
    stack = await startStack({ config: { users: [{ name: 'alice' }] } })
    // A queue of length 0: whatever does not fit at once is refused, so every request here is a 429.
    refusing = await startStack({ sim: { numGpuBlocks: 8 }, config: { admission: { maxQueueLength: 0 } } })
  })
  afterAll(async () => {
    await stack?.close()
    await refusing?.close()
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
    expect(rateLimit.code).toBe('queue_full')
    const retryAfterMs = Number(rateLimit.headers?.get('retry-after-ms'))
    expect(retryAfterMs).toBeGreaterThanOrEqual(1000)
    // One retry, after the wait kvgate asked for (the SDK's own backoff would be 0.5–1 s).
    expect(elapsedMs).toBeGreaterThanOrEqual(retryAfterMs - 50)
    const metrics = await scrape(refusing.adminUrl)
    expect(metricValue(metrics, 'kvgate_requests_total{outcome="rejected_queue_full",user="anonymous"}')).toBe(2)
  })
})
