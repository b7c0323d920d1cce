import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { createManualClock, createSeededRandom } from '../../src/core/index.js'
import { buildText } from '../../src/tokens/index.js'
import { percentile } from '../fairness/harness.js'
import { drive, metricValue, scrape, startStack, until, type Stack } from './stack.js'

interface Result {
  status: number
  ttftMs: number | undefined
  contentChunks: number
  done: boolean
  retryAfter: string | undefined
  reason: string | undefined
}

let prompts = 0

/**
 * One streaming chat request of 500 prompt + exactly 200 output tokens, timed from send to first content.
 * Every prompt is different (seeded words): identical prompts would share their KV blocks through the
 * emulator's prefix cache, and the burst would need a fraction of what it is meant to need.
 */
async function streamOne(baseUrl: string, headers: Record<string, string> = {}): Promise<Result> {
  const startMs = performance.now()
  const response = await request(`${baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      model: 'kvgate-sim',
      // 498 content tokens + the role marker + the generation prompt = 500 prompt tokens.
      messages: [{ role: 'user', content: buildText(498, createSeededRandom(++prompts)) }],
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    }),
  })
  let ttftMs: number | undefined
  let contentChunks = 0
  let text = ''
  for await (const chunk of response.body) {
    text += String(chunk)
    if (ttftMs === undefined && text.includes('"content":"')) {
      // The role chunk carries content "" ; the first non-empty content marks the first token.
      if (/"content":"[^"]/.test(text)) ttftMs = performance.now() - startMs
    }
  }
  contentChunks = (text.match(/"content":"[^"]/g) ?? []).length
  const header = (name: string) => {
    const value = response.headers[name]
    return Array.isArray(value) ? value[0] : value
  }
  return {
    status: response.statusCode,
    ttftMs,
    contentChunks,
    done: text.includes('data: [DONE]'),
    retryAfter: header('retry-after'),
    reason: header('x-kvgate-reject-reason'),
  }
}

const burst = (url: string, n: number, headers: Record<string, string> = {}) =>
  Promise.all(Array.from({ length: n }, () => streamOne(url, headers)))

/**
 * The emulator's own TTFT histogram (emulated seconds): how many observations there are, their sum, and how
 * many lie above a bound (counted from the first bucket edge at or above it, so never overcounted).
 */
async function emulatedTtfts(url: string) {
  const text = await (await request(`${url}/metrics`)).body.text()
  const buckets: [number, number][] = []
  let count = 0
  let sumSeconds = 0
  for (const line of text.split('\n')) {
    const bucket = /^vllm:time_to_first_token_seconds_bucket\{.*le="([^"]+)".*\} (\S+)$/.exec(line)
    if (bucket) buckets.push([Number(bucket[1]), Number(bucket[2])])
    if (line.startsWith('vllm:time_to_first_token_seconds_count{')) count = Number(line.split(' ').at(-1))
    if (line.startsWith('vllm:time_to_first_token_seconds_sum{')) sumSeconds = Number(line.split(' ').at(-1))
  }
  return {
    count,
    sumSeconds,
    countAbove: (seconds: number): number => count - (buckets.find(([le]) => le >= seconds)?.[1] ?? count),
  }
}

async function preemptions(sim: SimHandle): Promise<number> {
  const text = await (await request(`${sim.url}/metrics`)).body.text()
  const line = text.split('\n').find((l) => l.startsWith('vllm:num_preemptions_total'))
  return Number(line?.split(' ').at(-1))
}

// The done-when: an emulator with 256 blocks of 16 tokens (4,096 tokens of KV) and a burst of 100
// streaming requests of 500 prompt + 200 output tokens, i.e. 70,000 tokens of need, 17× the cache.
const SIM = { numGpuBlocks: 256, speed: 20, seed: 1 }

describe('a burst that overloads the emulator', () => {
  let sim: SimHandle | undefined
  let stack: Stack | undefined
  afterEach(async () => {
    await sim?.close()
    await stack?.close()
    sim = undefined
    stack = undefined
  })

  it('preempts when sent to the emulator directly', async () => {
    // The emulator on a stepped clock: the whole burst has arrived before its first engine step, and every
    // figure below is in emulated time, so nothing depends on how fast this machine delivers the burst. (On
    // the real clock at --speed 20, a loaded machine spread the burst over enough emulated time for early
    // requests to finish before late ones arrived, and the emulator never ran out of KV.)
    const clock = createManualClock()
    sim = await startSim({ ...SIM, logger: false }, { clock })
    const direct = sim
    const run = async (n: number): Promise<Result[]> => {
      const before = direct.engineState()
      let settled = 0
      const results = Array.from({ length: n }, () => streamOne(direct.url).finally(() => settled++))
      await until(() => (direct.engineState().waiting === before.waiting + n ? true : undefined))
      await drive(clock, () => settled === n, { stepMs: 20 })
      return Promise.all(results)
    }

    const idle = await run(1)
    const idleTtft = await emulatedTtfts(direct.url)
    expect(idleTtft.count).toBe(1)
    const results = await run(100)
    expect(results.every((r) => r.status === 200 && r.done && r.contentChunks === 200)).toBe(true)
    expect(idle[0]?.contentChunks).toBe(200)
    const burst = await emulatedTtfts(direct.url)
    // The nearest-rank p99 of 100 exceeds 3× the idle TTFT when at least two of them do.
    const slowerThanThreeIdle = burst.countAbove(3 * idleTtft.sumSeconds) - idleTtft.countAbove(3 * idleTtft.sumSeconds)
    console.log(
      `direct: idle TTFT ${(idleTtft.sumSeconds * 1000).toFixed(0)} emulated ms, ${slowerThanThreeIdle} of 100 burst TTFTs above 3× that, preemptions ${await preemptions(direct)}`,
    )
    expect(await preemptions(direct)).toBeGreaterThan(0)
    expect(slowerThanThreeIdle).toBeGreaterThanOrEqual(2)
  })

  it('through kvgate: every request completes or gets 429 with retry-after, no preemption, ledger back to 0, same share twice', async () => {
    // A bounded queue makes the share a property of the configuration rather than of this machine's speed:
    // what fits is admitted at once, 20 wait (well within their deadline), the rest are refused at once.
    stack = await startStack({ sim: SIM, config: { admission: { maxQueueLength: 20 } } })
    // Open the client's 100 keep-alive connections first, so each burst arrives at once rather than at the
    // pace of TCP handshakes (which would let early requests finish before late ones arrive).
    await Promise.all(Array.from({ length: 100 }, async () => (await request(`${stack!.url}/health`)).body.dump()))
    const shares: number[] = []
    for (let run = 0; run < 2; run++) {
      const results = await burst(stack.url, 100)
      const completed = results.filter((r) => r.status === 200)
      const rejected = results.filter((r) => r.status === 429)
      expect(completed.length + rejected.length).toBe(100)
      for (const r of completed) {
        expect(r.done).toBe(true)
        expect(r.contentChunks).toBe(200)
      }
      for (const r of rejected) {
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1)
        expect(Number(r.retryAfter)).toBeLessThanOrEqual(60)
        expect(r.reason).toBe('queue_full')
      }
      console.log(`kvgate run ${run + 1}: ${completed.length} completed, ${rejected.length} rejected (queue full)`)
      shares.push(completed.length / 100)
      await until(async () =>
        metricValue(await scrape(stack!.adminUrl), 'kvgate_ledger_reserved_tokens{backend="sim0"}') === 0
          ? true
          : undefined,
      )
      expect(stack.gateway.ledgerReservedTokens()).toBe(0)
      expect(stack.gateway.queueDepth()).toBe(0)
    }
    expect(await preemptions(stack.sim)).toBe(0)
    // 4,096 tokens less 5% headroom hold 5 requests of 700; plus the 20 queued.
    // On a loaded machine a burst's last requests can arrive after its first ones ended (a few more admitted).
    for (const share of shares) expect(share).toBeGreaterThanOrEqual(0.24)
    // The seed prototype's second run was rejected almost entirely; here both runs admit alike.
    expect(Math.abs((shares[0] ?? 0) - (shares[1] ?? 0))).toBeLessThanOrEqual(0.1)
  })

  it('through kvgate with a short deadline: admitted requests keep a bounded TTFT, the rest get 429 in time', async () => {
    stack = await startStack({ sim: SIM })
    // The emulator's own step times put a floor of about 1.5 s under this burst (20 rounds of 5 requests, 200
    // decode steps of ≥ 8 emulated ms each, at speed 20), whatever the machine: a 300 ms deadline must turn
    // some requests away, and the first round is admitted at once.
    const deadlineMs = 300
    await Promise.all(Array.from({ length: 100 }, async () => (await request(`${stack!.url}/health`)).body.dump()))
    const results = await burst(stack.url, 100, { 'x-kvgate-deadline-ms': String(deadlineMs) })
    const completed = results.filter((r) => r.status === 200)
    const rejected = results.filter((r) => r.status === 429)
    expect(completed.length + rejected.length).toBe(100)
    expect(completed.length).toBeGreaterThan(0)
    expect(rejected.length).toBeGreaterThan(0)
    for (const r of rejected) {
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1)
      expect(['queue_deadline_exceeded', 'predicted_wait_exceeds_deadline']).toContain(r.reason)
    }
    const p99 = percentile(
      completed.map((r) => r.ttftMs ?? Infinity),
      99,
    )
    console.log(
      `kvgate, ${deadlineMs} ms deadline: ${completed.length} completed, ${rejected.length} rejected, admitted TTFT p99 ${p99.toFixed(0)} ms`,
    )
    // Queue wait is capped by the deadline; the rest is one prefill (client, gateway and emulator share this
    // process and its CPU, hence the generous margin).
    expect(p99).toBeLessThan(deadlineMs + 1_000)
    expect(await preemptions(stack.sim)).toBe(0)
    await until(() => (stack!.gateway.ledgerReservedTokens() === 0 ? true : undefined))
  })
})
