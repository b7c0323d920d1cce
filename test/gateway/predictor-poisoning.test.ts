import PQueue from 'p-queue'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { buildText } from '../../src/tokens/index.js'
import { metricValue, scrape, startStack, until, type Stack } from './stack.js'

// The poisoning run: one user sends 1,000 requests with max_tokens 1, then a burst of 80 ordinary
// requests (no max_tokens, answers of 300 tokens) arrives. A predictor that learnt the cut answers as natural
// lengths predicted 1 token and let the burst preempt; a censoring one ignores them and stays conservative.

let prompts = 0
const SIM = { numGpuBlocks: 512, speed: 20, seed: 3 }

async function chat(url: string, user: string, body: Record<string, unknown>): Promise<number> {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({
      model: 'kvgate-sim',
      // Different prompts, so the emulator's prefix cache does not make the burst smaller than it is.
      messages: [{ role: 'user', content: buildText(98, createSeededRandom(++prompts)) }],
      ...body,
    }),
  })
  await response.body.text()
  return response.statusCode
}

async function preemptions(stack: Stack): Promise<number> {
  const text = await (await request(`${stack.sim.url}/metrics`)).body.text()
  return Number(
    text
      .split('\n')
      .find((l) => l.startsWith('vllm:num_preemptions_total'))
      ?.split(' ')
      .at(-1),
  )
}

/** `cut` requests cut at 1 token, 100 at a time, then the burst of 80; returns the burst's statuses. */
async function poisonThenBurst(
  stack: Stack,
  cut = 1_000,
  beforeBurst: () => Promise<void> = async () => {},
): Promise<number[]> {
  const queue = new PQueue({ concurrency: 100 })
  const statuses = await Promise.all(
    Array.from({ length: cut }, () => queue.add(() => chat(stack.url, 'poisoner', { max_tokens: 1 }))),
  )
  expect(statuses.every((status) => status === 200)).toBe(true)
  await beforeBurst()
  // Open the burst's connections first so that it arrives at once.
  await Promise.all(Array.from({ length: 80 }, async () => (await request(`${stack.url}/health`)).body.dump()))
  return Promise.all(
    Array.from({ length: 80 }, (_, i) =>
      chat(stack.url, `user-${i % 8}`, { stream: true, vllm_xargs: { kvgate_sim_output_tokens: 300 } }),
    ),
  )
}

describe('predictor poisoning: 1,000 answers cut by max_tokens 1, then a burst of 80 ordinary requests', () => {
  let stack: Stack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  const config = { admission: { maxQueueLength: 200, defaultDeadlineMs: 120_000 } }

  it('causes no preemption: the cut answers are censored and the prediction stays conservative', async () => {
    stack = await startStack({ sim: SIM, config })
    const burst = await poisonThenBurst(stack, 1_000, async () => {
      // Every cut answer set aside: the model is as cold as before them.
      expect(
        metricValue(await scrape(stack!.gateway.adminUrl()), 'kvgate_predictor_output_tokens{model="kvgate-sim"}'),
      ).toBe(1_024)
    })
    const text = await scrape(stack.gateway.adminUrl())
    expect(metricValue(text, 'kvgate_predictor_censored_total{model="kvgate-sim"}')).toBeGreaterThanOrEqual(1_000)
    expect(burst.every((status) => status === 200 || status === 429)).toBe(true)
    expect(burst.filter((status) => status === 200).length).toBeGreaterThan(40)
    expect(await preemptions(stack)).toBe(0)
    await until(() => (stack?.gateway.ledgerReservedTokens() === 0 ? true : undefined))
  })

  it('control: a predictor told 1 token (what learning the cut answers gave) lets the burst preempt', async () => {
    // minSamples 1 and a cold start of 1: the cut answers are not below the prediction, so they are kept.
    stack = await startStack({
      sim: SIM,
      config: { ...config, predictor: { coldStartOutputTokens: 1, minSamples: 1 } },
    })
    await poisonThenBurst(stack, 50, async () => {
      expect(
        metricValue(await scrape(stack!.gateway.adminUrl()), 'kvgate_predictor_output_tokens{model="kvgate-sim"}'),
      ).toBe(1)
    })
    expect(await preemptions(stack)).toBeGreaterThan(0)
    await until(() => (stack?.gateway.ledgerReservedTokens() === 0 ? true : undefined))
  })
})
