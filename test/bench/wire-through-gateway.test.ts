import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createSystemClock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { runTrace } from '../../src/bench/index.js'
import { metricValue, scrape, startStack, until } from '../gateway/stack.js'
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

describe('--client-max-tokens none through kvgate to the real emulator', () => {
  it("ends each answer at the trace length (nothing cut, nothing censored); a trusted client's hints are used", async () => {
    const stack = await startStack({
      config: { users: [{ name: 'oracle-client', trustOutputHint: true }] },
    })
    try {
      const lengths = [1, 7, 64, 250, 333]
      const trace = lengths.map((outputTokens, i) => ({
        arrivalMs: i * 10,
        user: i % 2 === 0 ? 'u' : 'oracle-client',
        inputTokens: 30 + i,
        outputTokens,
      }))
      const base = { baseUrl: stack.url, counter: createWordPieceTokenCounter(), clock: createSystemClock(), seed: 5 }
      const plain = await runTrace(trace, { ...base, clientMaxTokens: 'none' })
      const hinted = await runTrace(trace, {
        ...base,
        clientMaxTokens: 'none',
        outputHintHeader: 'x-kvgate-output-tokens',
      })
      for (const run of [plain, hinted]) {
        expect(run.records.map((r) => r.outcome)).toEqual(lengths.map(() => 'completed'))
        // Records come in the order answers ended; the trace's order is each record's index.
        const byIndex = [...run.records].sort((a, b) => a.index - b.index)
        expect(byIndex.map((r) => r.outputNumTokens)).toEqual(lengths)
      }
      // No max_tokens anywhere, so nothing was cut: the predictor learnt every answer, censored none.
      const text = await scrape(stack.gateway.adminUrl())
      expect(metricValue(text, 'kvgate_predictor_censored_total{model="kvgate-sim"}')).toBe(0)
      // The trusted user's hints were used, the other's ignored.
      expect(metricValue(text, 'kvgate_output_hints_total{result="used"}')).toBe(2)
      expect(metricValue(text, 'kvgate_output_hints_total{result="ignored_untrusted"}')).toBe(3)
      await until(() => (stack.gateway.ledgerReservedTokens() === 0 ? true : undefined))
    } finally {
      await stack.close()
    }
  })
})
