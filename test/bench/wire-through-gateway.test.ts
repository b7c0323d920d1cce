import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createSystemClock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { runTrace } from '../../src/bench/index.js'
import { until } from '../gateway/stack.js'
import { type FakeVllm, startFakeVllm } from '../proxy/fake-vllm.js'

/**
 * The out-of-band length reaches the backend through kvgate untouched: the bench sends
 * `vllm_xargs.kvgate_sim_output_tokens` and no max_tokens; the backend behind the gateway receives exactly that.
 */
let fake: FakeVllm
let gateway: Gateway
let url: string
beforeAll(async () => {
  fake = await startFakeVllm()
  const chat = fake.handler
  fake.handler = (req, res) => {
    if (!req.url.startsWith('/v1/models')) return chat(req, res)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake' }] }))
  }
  gateway = await createGateway({
    config: parseConfig({ backends: [{ url: fake.url }], metricsPoll: { intervalMs: 20 } }),
    logger: false,
  })
  url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  await until(() => gateway.backends()[0]?.usable === true || undefined)
})
afterAll(async () => {
  await gateway.close()
  await fake.close()
})

describe('--client-max-tokens none through kvgate', () => {
  it('forwards vllm_xargs as the bench sent it, and the gateway releases what it reserved', async () => {
    const run = await runTrace([{ arrivalMs: 0, user: 'u', inputTokens: 20, outputTokens: 33 }], {
      baseUrl: url,
      counter: createWordPieceTokenCounter(),
      clock: createSystemClock(),
      seed: 3,
      clientMaxTokens: 'none',
    })
    expect(run.records[0]?.outcome).toBe('completed')
    const chats = fake.received.filter((r) => r.url.startsWith('/v1/chat/completions'))
    expect(chats).toHaveLength(1)
    const body = JSON.parse(chats[0]?.body ?? '{}') as Record<string, unknown>
    expect(body['vllm_xargs']).toEqual({ kvgate_sim_output_tokens: 33 })
    expect(body).not.toHaveProperty('max_tokens')
    expect(body).not.toHaveProperty('ignore_eos')
    const totals = await until(async () => {
      const res = await request(`${gateway.adminUrl()}/debug/reservations`)
      const t = ((await res.body.json()) as { totals: Record<string, number> }).totals
      return t['requestsStarted'] === t['requestsEnded'] ? t : undefined
    })
    expect(totals).toMatchObject({ reservedTokens: 0, reservations: 0, queued: 0 })
  })
})
