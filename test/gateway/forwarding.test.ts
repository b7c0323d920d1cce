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
    const chunks = data
      .slice(0, -1)
      .map((d) => JSON.parse(d) as { choices: { delta: { content?: string } }[]; usage?: unknown })
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
    const usage = JSON.parse(data.at(-2) ?? '{}') as {
      choices: unknown[]
      usage: { completion_tokens: number; prompt_tokens: number }
    }
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
    const text = await scrape(stack.adminUrl)
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="anonymous"}')).toBe(3)
    expect(metricValue(text, 'kvgate_admissions_total{user="anonymous"}')).toBe(3)
    expect(metricValue(text, 'kvgate_tokens_served_total{user="anonymous",kind="completion"}')).toBe(32)
    expect(metricValue(text, 'kvgate_ledger_reserved_tokens{backend="sim0"}')).toBe(0)
    expect(metricValue(text, 'kvgate_backend_up{backend="sim0"}')).toBe(1)
    expect(metricValue(text, 'kvgate_backend_capacity_tokens{backend="sim0"}')).toBe(256 * 16)
    const debug = await request(`${stack.adminUrl}/debug/reservations`)
    expect(((await debug.body.json()) as { reservations: unknown[] }).reservations).toEqual([])
  })

  it('exports every metric of the contract, with units in the names', async () => {
    const text = await scrape(stack.adminUrl)
    const names = [
      'kvgate_requests_total',
      'kvgate_admissions_total',
      'kvgate_queue_depth',
      'kvgate_queue_wait_seconds',
      'kvgate_ledger_reserved_tokens',
      'kvgate_ledger_reservations',
      'kvgate_backend_capacity_tokens',
      'kvgate_backend_used_tokens',
      'kvgate_backend_kv_usage_ratio',
      'kvgate_backend_metrics_age_seconds',
      'kvgate_backend_up',
      'kvgate_backend_poll_errors_total',
      'kvgate_predictor_output_tokens',
      'kvgate_predictor_coverage_ratio',
      'kvgate_predictor_over_reservation_ratio',
      'kvgate_ttft_seconds',
      'kvgate_request_duration_seconds',
      'kvgate_tokens_served_total',
      // kvgate_policy_virtual_tokens and kvgate_policy_quota_tokens_per_minute have series only under vtc / tpm.
    ]
    for (const name of names) expect(text, name).toContain(`# TYPE ${name} `)
    expect(metricValue(text, 'kvgate_predictor_output_tokens{model="kvgate-sim"}')).toBeGreaterThan(0)
    expect(text).toMatch(/kvgate_ttft_seconds_count\{user="anonymous"\} 2/)
    expect(text).toMatch(/kvgate_queue_wait_seconds_count\{result="admitted"\} 3/)
  })

  it('passes vLLM routes that need no admission through to the emulator', async () => {
    const version = await request(`${stack.url}/version`)
    expect(await version.body.json()).toHaveProperty('version')
    const models = (await (await request(`${stack.url}/v1/models`)).body.json()) as {
      object: string
      data: { id: string }[]
    }
    expect(models.object).toBe('list')
    expect(models.data[0]?.id).toBe('kvgate-sim')
    const tokenized = await postJson(`${stack.url}/tokenize`, { prompt: promptOf(7) })
    const { count, tokens } = JSON.parse(tokenized.text) as { count: number; tokens: number[] }
    expect(count).toBe(7)
    const detokenized = await postJson(`${stack.url}/detokenize`, { tokens })
    expect(JSON.parse(detokenized.text)).toEqual({ prompt: promptOf(7) })
  })

  it('answers /health 200 while a backend is usable', async () => {
    const response = await request(`${stack.url}/health`)
    expect(response.statusCode).toBe(200)
    expect(await response.body.json()).toMatchObject({ status: 'ok', backends: [{ name: 'sim0', usable: true }] })
  })
})
