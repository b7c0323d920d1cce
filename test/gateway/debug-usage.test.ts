import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { metricValue, postJson, scrape, startStack, type Stack } from './stack.js'

describe('per-user usage: GET /debug/usage and the user-labelled metrics', () => {
  let stack: Stack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  const chat = (user: string, headers: Record<string, string> = {}) =>
    postJson(
      `${stack?.url}/v1/chat/completions`,
      { model: 'kvgate-sim', messages: [{ role: 'user', content: ' hello there' }], max_tokens: 5, ignore_eos: true },
      { 'x-user-id': user, ...headers },
    )

  it('counts requests, tokens and 429s per user by name, while the metric labels stay bounded', async () => {
    stack = await startStack({
      config: {
        policy: { name: 'tpm' },
        identity: { order: ['header'] },
        telemetry: { maxUserLabels: 1 },
        users: [{ name: 'alice' }, { name: 'bob', requestsPerMinute: 1 }],
      },
    })
    const answers = [await chat('alice'), await chat('alice'), await chat('bob'), await chat('zed')]
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200])
    // bob's second request this minute waits on its quota past its own short deadline.
    const throttled = await chat('bob', { 'x-kvgate-deadline-ms': '100' })
    expect(throttled.status).toBe(429)
    const usage = (answer: (typeof answers)[number]) =>
      (JSON.parse(answer.text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage

    const response = await request(`${stack.adminUrl}/debug/usage?since=5m`)
    expect(response.statusCode).toBe(200)
    const report = (await response.body.json()) as {
      from: string
      to: string
      bucketSeconds: number
      totals: Record<string, number>
      users: { user: string; requests: number; inputTokens: number; outputTokens: number; rateLimited: number }[]
    }
    expect(report.bucketSeconds).toBe(60)
    expect(Date.parse(report.to) - Date.parse(report.from)).toBeLessThanOrEqual(6 * 60_000)
    const row = (user: string) => report.users.find((u) => u.user === user)
    const first = usage(answers[0] as (typeof answers)[number])
    expect(row('alice')).toMatchObject({
      requests: 2,
      rateLimited: 0,
      inputTokens: 2 * first.prompt_tokens,
      outputTokens: 2 * first.completion_tokens,
    })
    expect(row('bob')).toMatchObject({ requests: 2, rateLimited: 1, outputTokens: first.completion_tokens })
    expect(row('zed')).toMatchObject({ requests: 1, rateLimited: 0 })
    expect(report.users[0]?.user).toBe('alice') // most tokens first
    expect(report.totals).toMatchObject({ users: 3, requests: 5, rateLimited: 1, completed: 4 })

    // The metrics tell the same story, with bob and zed folded into `other` (maxUserLabels: 1).
    const metrics = await scrape(stack.adminUrl)
    expect(metricValue(metrics, 'kvgate_requests_total{outcome="completed",user="alice"}')).toBe(2)
    expect(metricValue(metrics, 'kvgate_requests_total{outcome="completed",user="other"}')).toBe(2)
    expect(metricValue(metrics, 'kvgate_requests_total{outcome="rejected_quota",user="other"}')).toBe(1)
    expect(metricValue(metrics, 'kvgate_tokens_served_total{user="alice",kind="completion"}')).toBe(
      2 * first.completion_tokens,
    )
    expect(metrics).not.toMatch(/user="(bob|zed)"/)
    expect(stack.gateway.ledgerReservedTokens()).toBe(0)
  })

  it('answers 400 naming since when it is not a time', async () => {
    stack = await startStack()
    const response = await request(`${stack.adminUrl}/debug/usage?since=yesterday`)
    expect(response.statusCode).toBe(400)
    expect(await response.body.json()).toEqual({
      error: {
        message: 'since must be a duration (15m, 6h, 1d), an ISO 8601 time or epoch milliseconds',
        type: 'invalid_request_error',
        param: 'since',
        code: 'invalid_request',
      },
    })
  })
})
