import { afterEach, describe, expect, it } from 'vitest'
import { createManualClock, createSeededRandom } from '../../src/core/index.js'
import { buildText } from '../../src/tokens/index.js'
import { drive } from '../support/poll.js'
import {
  ALICE,
  type GuardedStack,
  rawJson,
  type RawResponse,
  servesNormally,
  startGuardedStack,
  until,
} from './support.js'

/** The spellings that reached vLLM unadmitted before kvgate routed on the normalised path. */
const SPELLINGS = [
  { target: '/v1/./chat/completions', kind: 'chat' },
  { target: '//v1/completions', kind: 'completion' },
  { target: '/v1/%63hat/completions', kind: 'chat' },
  { target: '/./v1/completions', kind: 'completion' },
  { target: '/v1//chat/completions', kind: 'chat' },
  { target: '/v1/x/../completions', kind: 'completion' },
] as const

const BURST = 60
const PROMPT_TOKENS = 500
const OUTPUT_TOKENS = 200

/** 500 prompt + exactly 200 output tokens, every prompt different (no prefix-cache sharing). */
function body(kind: 'chat' | 'completion', i: number): Record<string, unknown> {
  const text = buildText(PROMPT_TOKENS - 2, createSeededRandom(1_000 + i))
  const common = { model: 'kvgate-sim', max_tokens: OUTPUT_TOKENS, ignore_eos: true }
  return kind === 'chat' ? { ...common, messages: [{ role: 'user', content: text }] } : { ...common, prompt: text }
}

async function preemptions(simUrl: string): Promise<number> {
  const text = await (await fetch(`${simUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('vllm:num_preemptions_total'))
  return Number(line?.split(' ').at(-1))
}

/**
 * The done-when of issue 10: a burst of 60 through the spellings that walked around admission causes no
 * preemption in front of `kvgate sim --num-gpu-blocks 256` (4,096 tokens of KV; the burst needs 42,000).
 * Both the emulator and the gateway run on one stepped clock: every request has arrived before the first
 * engine step, and nothing depends on how fast this machine delivers them.
 */
describe('a burst of 60 through every spelling of the completion routes', () => {
  let stack: GuardedStack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  it('is admitted like the real routes: all complete, 0 preemptions, the ledger back at 0', async () => {
    const clock = createManualClock()
    stack = await startGuardedStack({
      clock,
      simClock: clock,
      sim: { numGpuBlocks: 256, seed: 3 },
      config: {
        // Polls every 20 ms of the clock; nothing goes stale or late however long the burst takes.
        metricsPoll: { intervalMs: 20, timeoutMs: 600_000, staleAfterMs: 600_000 },
        healthCheck: { intervalMs: 600_000, timeoutMs: 600_000 },
        admission: { defaultDeadlineMs: 600_000, maxDeadlineMs: 600_000, earlyReject: false },
      },
    })
    const current = stack
    let settled = 0
    const results = Array.from({ length: BURST }, (_, i) => {
      const spelling = SPELLINGS[i % SPELLINGS.length]!
      return rawJson(current.url, 'POST', spelling.target, body(spelling.kind, i), ALICE).finally(() => settled++)
    })
    // Every request has reached admission (queued or admitted) before the clock moves.
    await until(async () => ((await inAdmission(current.adminUrl)) === BURST ? true : undefined), {
      what: 'the whole burst to reach admission',
    })
    await drive(clock, () => settled === BURST, { stepMs: 20 })
    const answers: RawResponse[] = await Promise.all(results)
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200))
    for (const answer of answers) {
      expect((answer.json as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(OUTPUT_TOKENS)
    }
    expect(await preemptions(current.sim.url)).toBe(0)
    await drive(clock, () => current.gateway.ledgerReservedTokens() === 0, { stepMs: 20 })
    expect(current.gateway.queueDepth()).toBe(0)
    let served = false
    const normal = servesNormally(current).then(() => {
      served = true
    })
    await drive(clock, () => served, { stepMs: 20 })
    await normal
  })
})

/** Requests in admission: queued, or admitted and holding a reservation (the admin listener's totals). */
async function inAdmission(adminUrl: string): Promise<number> {
  const debug = (await (await fetch(`${adminUrl}/debug/reservations`)).json()) as {
    totals: { reservations: number; queued: number }
  }
  return debug.totals.reservations + debug.totals.queued
}
