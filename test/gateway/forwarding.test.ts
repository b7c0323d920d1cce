import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { metricValue, postJson, promptOf, scrape, sseData, startStack, type Stack } from './stack.js'

describe('forwarding through kvgate to the emulator', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('streams a chat completion and strips the usage chunk the client did not ask for', async () => {
    const response = await postJson(`${stack.url}/v1/chat/completions`, {
      model: 'kvgate-sim',
      messages: [{ role: 'user', content: promptOf(50) }],
      max_tokens: 20,
      ignore_eos: true,
      stream: true,
    })
    expect(response.status).toBe(200)
    expect(response.headers['content-type']).toContain('text/event-stream')
    const data = sseData(response.text)
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: { delta: { content?: string } }[]; usage?: unknown })
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true)
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
    expect(content.trim().split(/\s+/).length).toBe(20)
  })

  it('passes the usage chunk on when the client asked for it', async () => {
    const response = await postJson(`${stack.url}/v1/completions`, {
      model: 'kvgate-sim',
      prompt: promptOf(30),
      max_tokens: 7,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    })
    const data = sseData(response.text)
    const usage = JSON.parse(data.at(-2) ?? '{}') as { choices: unknown[]; usage: { completion_tokens: number; prompt_tokens: number } }
    expect(usage.choices).toEqual([])
    expect(usage.usage.completion_tokens).toBe(7)
    expect(usage.usage.prompt_tokens).toBe(30)
  })

  it('forwards a non-streaming completion with its usage', async () => {
    const response = await postJson(`${stack.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: promptOf(10) }],
      max_completion_tokens: 5,
      ignore_eos: true,
    })
    expect(response.status).toBe(200)
    expect(response.headers['x-kvgate-backend']).toBe('sim0')
    const body = JSON.parse(response.text) as { object: string; usage: { completion_tokens: number } }
    expect(body.object).toBe('chat.completion')
    expect(body.usage.completion_tokens).toBe(5)
  })

  it('releases every reservation and counts outcomes, tokens and admissions', async () => {
    expect(stack.gateway.ledgerReservedTokens()).toBe(0)
    expect(stack.gateway.queueDepth()).toBe(0)
    const text = await scrape(stack.url)
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="anonymous"}')).toBe(3)
    expect(metricValue(text, 'kvgate_admissions_total{user="anonymous"}')).toBe(3)
    expect(metricValue(text, 'kvgate_tokens_served_total{user="anonymous",kind="completion"}')).toBe(32)
    expect(metricValue(text, 'kvgate_ledger_reserved_tokens{backend="sim0"}')).toBe(0)
    expect(metricValue(text, 'kvgate_backend_up{backend="sim0"}')).toBe(1)
    expect(metricValue(text, 'kvgate_backend_capacity_tokens{backend="sim0"}')).toBe(256 * 16)
    const debug = await request(`${stack.url}/debug/reservations`)
    expect(((await debug.body.json()) as { reservations: unknown[] }).reservations).toEqual([])
  })

  it('answers /health 200 while a backend is usable', async () => {
    const response = await request(`${stack.url}/health`)
    expect(response.statusCode).toBe(200)
    expect(await response.body.json()).toMatchObject({ status: 'ok', backends: [{ name: 'sim0', usable: true }] })
  })
})
