import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { buildText } from '../../src/tokens/index.js'
import { metricValue, scrape, startStack, until, type Stack } from './stack.js'

let prompts = 0

async function chat(url: string, deadlineMs: number): Promise<{ status: number; reason: string | undefined }> {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-kvgate-deadline-ms': String(deadlineMs) },
    body: JSON.stringify({
      messages: [{ role: 'user', content: buildText(198, createSeededRandom(++prompts)) }],
      stream: true,
      vllm_xargs: { kvgate_sim_output_tokens: 100 },
    }),
  })
  await response.body.text()
  const reason = response.headers['x-kvgate-reject-reason']
  return { status: response.statusCode, reason: Array.isArray(reason) ? reason[0] : reason }
}

/** Σ of a histogram's `_count` series whose labels contain `kind="…"`. */
function countOf(text: string, metric: string, kind: string): number {
  let total = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${metric}_count{`) && line.includes(`kind="${kind}"`)) total += Number(line.split(' ').at(-1))
  }
  return total
}

describe('the wait predictions checked, in /metrics', () => {
  let stack: Stack | undefined
  afterEach(async () => {
    await stack?.close()
    stack = undefined
  })

  it('shows how predicted waits turned out, early rejections included, and the factors in force', async () => {
    // 256 blocks: a handful of 200 + 100-token requests at a time, the rest wait and the drain rate is measured.
    stack = await startStack({
      sim: { numGpuBlocks: 256, speed: 20, seed: 2 },
      config: { predictor: { coldStartOutputTokens: 100 }, admission: { maxQueueLength: 500 } },
    })
    const url = stack.url
    await Promise.all(Array.from({ length: 60 }, async () => (await request(`${url}/health`)).body.dump()))
    // A patient burst measures the drain; a second, impatient one is predicted, and what cannot make its 150 ms
    // is turned away at once (how many depends on this machine's speed, so the test counts them).
    // Patient bursts until the drain rate is measured (a second of KV-bound waiting, on the real clock: how many
    // bursts that takes depends on the machine) and a later burst's waits were predicted and checked.
    const admittedChecks = await until(
      async () => {
        const patient = await Promise.all(Array.from({ length: 60 }, () => chat(url, 60_000)))
        expect(patient.filter((r) => r.status !== 200)).toEqual([])
        const n = countOf(await scrape(stack!.gateway.adminUrl()), 'kvgate_wait_prediction_ratio', 'admitted')
        return n > 0 ? n : undefined
      },
      { timeoutMs: 60_000, what: 'a checked wait prediction' },
    )
    const impatient = await Promise.all(Array.from({ length: 120 }, () => chat(url, 150)))
    const early = impatient.filter((r) => r.reason === 'predicted_wait_exceeds_deadline').length
    // Every early rejection is shadowed and, once the queue has drained what it would have waited for,
    // measured: one `rejected` sample each.
    const text = await until(async () => {
      const t = await scrape(stack!.gateway.adminUrl())
      return countOf(t, 'kvgate_wait_prediction_ratio', 'rejected') === early ? t : undefined
    })
    expect(countOf(text, 'kvgate_wait_prediction_error_seconds', 'rejected')).toBe(early)
    // Requests admitted after waiting, predicted once the drain rate was measured.
    expect(countOf(text, 'kvgate_wait_prediction_ratio', 'admitted')).toBeGreaterThanOrEqual(admittedChecks)
    for (const use of ['retry_after', 'early_reject']) {
      const factor = metricValue(text, `kvgate_wait_prediction_factor{bucket="lt20pct",use="${use}"}`)
      expect(factor).toBeGreaterThan(0)
    }
    await until(() => (stack?.gateway.ledgerReservedTokens() === 0 ? true : undefined))
  })
})
