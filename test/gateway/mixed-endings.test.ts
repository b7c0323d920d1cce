import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { createSeededRandom, randomInt } from '../../src/core/index.js'
import { promptOf, scrape, startStack, until, type Stack } from './stack.js'

type Kind = 'stream' | 'plain' | 'abort-early' | 'abort-mid-stream' | 'short-deadline'

function sumOf(text: string, name: string): number {
  let total = 0
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`)) total += Number(line.split(' ').at(-1))
  return total
}

/**
 * Every way a request can end, a thousand times, interleaved: success streaming and not, client aborts while
 * queued and mid-stream, upstream 500s and cut streams (emulator faults), deadlines. Whatever the mix, the
 * ledger must end at 0 with nothing queued, and each request must be counted exactly once.
 */
describe('1,000 mixed requests', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      sim: { numGpuBlocks: 128, speed: 20, seed: 7, faults: { errorRate: 0.05, streamCutRate: 0.05 } },
      config: { admission: { maxQueueLength: 300 } },
    })
  })
  afterAll(async () => {
    await stack?.close()
  })

  it('end with the ledger at 0, the queue empty and one outcome per request', async () => {
    const random = createSeededRandom(42)
    const kinds: Kind[] = Array.from({ length: 1000 }, () => {
      const r = random.next()
      return r < 0.4
        ? 'stream'
        : r < 0.6
          ? 'plain'
          : r < 0.75
            ? 'abort-early'
            : r < 0.9
              ? 'abort-mid-stream'
              : 'short-deadline'
    })
    const plans = kinds.map((kind) => ({
      kind,
      prompt: randomInt(random, 10, 300),
      maxTokens: randomInt(random, 2, 40),
      abortAfterMs: randomInt(random, 0, 40),
    }))
    const statuses = new Map<string, number>()
    const note = (key: string) => statuses.set(key, (statuses.get(key) ?? 0) + 1)

    const runOne = async (plan: (typeof plans)[number]): Promise<void> => {
      const controller = new AbortController()
      const stream = plan.kind !== 'plain'
      if (plan.kind === 'abort-early') setTimeout(() => controller.abort(), plan.abortAfterMs)
      try {
        const response = await request(`${stack.url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(plan.kind === 'short-deadline' ? { 'x-kvgate-deadline-ms': '20' } : {}),
          },
          body: JSON.stringify({
            messages: [{ role: 'user', content: promptOf(plan.prompt) }],
            max_tokens: plan.maxTokens,
            stream,
          }),
          signal: controller.signal,
        })
        let text = ''
        for await (const chunk of response.body) {
          text += String(chunk)
          if (plan.kind === 'abort-mid-stream' && /"content":"[^"]/.test(text)) {
            controller.abort()
            break
          }
        }
        note(`${response.statusCode}${text.includes('"error"') && response.statusCode === 200 ? '+error-event' : ''}`)
      } catch {
        note('aborted')
      }
    }

    // 200 clients at a time over 1,000 requests keeps the queue busy without a thousand sockets at once.
    let next = 0
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        while (next < plans.length) {
          const plan = plans[next++]
          if (plan !== undefined) await runOne(plan)
        }
      }),
    )
    console.log('client-side endings:', Object.fromEntries(statuses))

    // Server-side endings of aborted requests land a moment after the client gave up. A request the client
    // abandoned before its body was sent never reached a handler; every one that did must end exactly once.
    interface Totals {
      reservedTokens: number
      outstandingTokens: number
      reservations: number
      queued: number
      forwarding: number
      requestsStarted: number
      requestsEnded: number
    }
    const totals = async (): Promise<Totals> =>
      ((await (await request(`${stack.adminUrl}/debug/reservations`)).body.json()) as { totals: Totals }).totals
    const settled = await until(async () => {
      const t = await totals()
      return t.requestsStarted === t.requestsEnded && t.forwarding === 0 ? t : undefined
    })
    const text = await scrape(stack.adminUrl)
    const responded = [...statuses.entries()].filter(([key]) => key !== 'aborted').reduce((a, [, n]) => a + n, 0)
    expect(settled.requestsStarted).toBeGreaterThanOrEqual(responded)
    expect(settled.requestsStarted).toBeLessThanOrEqual(1000)
    expect(sumOf(text, 'kvgate_requests_total')).toBe(settled.requestsEnded)
    expect(settled).toMatchObject({ reservedTokens: 0, outstandingTokens: 0, reservations: 0, queued: 0 })
    const outcomes: Record<string, number> = {}
    for (const line of text.split('\n')) {
      const match = /^kvgate_requests_total\{outcome="([a-z_]+)"/.exec(line)
      if (match?.[1] !== undefined) outcomes[match[1]] = (outcomes[match[1]] ?? 0) + Number(line.split(' ').at(-1))
    }
    console.log('kvgate outcomes:', outcomes)
    expect(stack.gateway.ledgerReservedTokens()).toBe(0)
    expect(stack.gateway.queueDepth()).toBe(0)
    // Every kind of ending happened, so the invariant was tested on each path.
    for (const outcome of ['completed', 'cancelled_streaming', 'upstream_error'])
      expect(outcomes[outcome] ?? 0).toBeGreaterThan(0)
    expect((outcomes['rejected_deadline'] ?? 0) + (outcomes['rejected_early'] ?? 0)).toBeGreaterThan(0)
    expect(outcomes['cancelled_queued'] ?? 0).toBeGreaterThan(0)
    // The emulator is idle again: kvgate left nothing running behind a client that went away.
    await until(() => (stack.sim.engineState().running === 0 ? true : undefined))
  })
})
