import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createScaledClock, type Clock } from '../../src/core/index.js'
import { redisAvailable, startRedis, type RedisServer } from '../support/redis.js'
import { startReplicas, streamOne, warmConnections, type Replicas, type StreamResult } from './replicas.js'

const SPEED = 20 // a quota minute lasts 3 s
// Admission is where the quota holds; a request reaches the emulator a little later (its forwarding, on a
// loaded 2-core machine up to ~100 real ms, which the scaled clock multiplies by 20), and admissions bunch
// at the instants the window frees room: arrivals at the emulator are counted over 60 s less this allowance.
// The precise figure over real minutes is in docs/replicas.md.
const TRANSPORT_ALLOWANCE_MS = 3_000 // 150 real ms at SPEED
const PROMPT = 100
const OUTPUT = 100
const PER_REQUEST = PROMPT + OUTPUT
const QUOTA = 3_000 // tokens per minute: 15 requests

/**
 * What reaches the emulator, timed there: a plain forwarding proxy in front of it that notes when each
 * completion request arrives (what the gateways let through, whatever the clients saw and when).
 */
async function startArrivalRecorder(
  upstream: string,
  clock: Clock,
): Promise<{ url: string; arrivals: number[]; server: Server }> {
  const arrivals: number[] = []
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/v1/chat/completions')) arrivals.push(clock.wallNow())
    request(`${upstream}${req.url}`, {
      method: req.method as 'GET',
      headers: req.headers,
      body: req.method === 'GET' ? null : req,
    }).then(
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers as Record<string, string>)
        answer.body.pipe(res)
      },
      () => res.destroy(),
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, arrivals, server }
}

/** The most tokens that reached the emulator in any 60 s (less the allowance), sliding over every arrival. */
function busiestMinute(arrivals: readonly number[], allowanceMs: number): number {
  const times = [...arrivals].sort((x, y) => x - y)
  let most = 0
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[j] as number) <= (times[i] as number) - (60_000 - allowanceMs)) j++
    most = Math.max(most, (i - j + 1) * PER_REQUEST)
  }
  return most
}

/**
 * A user with a tokens-per-minute quota sends through three gateways at once: the shared sliding minute
 * (reserved at the prediction, settled at the end) holds it to its quota across all three, where three
 * separate windows would let three quotas through.
 */
describe.runIf(redisAvailable)('a quota across replicas', () => {
  let server: RedisServer
  let replicas: Replicas
  let recorder: Awaited<ReturnType<typeof startArrivalRecorder>> | undefined
  const clock = createScaledClock(SPEED)
  beforeAll(async () => {
    server = await startRedis()
    replicas = await startReplicas({
      count: 3,
      clock,
      upstream: async (simUrl) => {
        recorder = await startArrivalRecorder(simUrl, clock)
        return recorder.url
      },
      state: { store: 'redis', url: server.url, keyPrefix: 'quota:' },
      sim: { numGpuBlocks: 256, speed: SPEED, seed: 4 },
      config: {
        policy: { name: 'tpm', options: {} },
        users: [{ name: 'q', tokensPerMinute: QUOTA }],
        admission: { defaultDeadlineMs: 600_000, maxDeadlineMs: 600_000 },
        // The poll interval and staleness are on the scaled clock too.
        metricsPoll: { intervalMs: 600, staleAfterMs: 60_000, timeoutMs: 30_000 },
      },
    })
  })
  afterAll(async () => {
    await replicas?.close()
    await new Promise((resolve) => recorder?.server.close(resolve))
    await server?.close()
  })

  it('serves at most the quota in any minute (± one request), whichever replica a request goes to', async () => {
    await warmConnections(replicas.urls, 3)
    // Warm the whole path (the gateways' connections to the emulator, the code's first run) with a user
    // without a quota, so the first quota minute's requests do not reach the emulator late.
    await Promise.all(
      replicas.urls.map((url) => streamOne(url, { user: 'warm', promptTokens: PROMPT, outputTokens: 4 })),
    )
    recorder?.arrivals.splice(0)
    const results: StreamResult[] = []
    // Every charge the shared window holds, read every 50 real ms (an entry stays 3 real s): the admissions'
    // own times, to check exactly; the emulator's arrivals check it independently, within the allowance.
    const redis = server.client()
    const charges = new Map<string, number>()
    const reader = setInterval(() => {
      redis.zrange('quota:q:q', '0', '-1', 'WITHSCORES').then(
        (z) => {
          for (let i = 0; i + 1 < z.length; i += 2)
            if (!z[i]?.endsWith(':over')) charges.set(z[i] as string, Number(z[i + 1]))
        },
        () => undefined,
      )
    }, 50)
    const endAtMs = clock.wallNow() + 130_000 // past the start of a third quota minute
    await Promise.all(
      replicas.urls.flatMap((url) =>
        Array.from({ length: 3 }, async () => {
          while (clock.wallNow() < endAtMs) {
            results.push(await streamOne(url, { user: 'q', promptTokens: PROMPT, outputTokens: OUTPUT, clock }))
          }
        }),
      ),
    )
    clearInterval(reader)
    const admitted = busiestMinute([...charges.values()], 0)
    const most = busiestMinute(recorder?.arrivals ?? [], TRANSPORT_ALLOWANCE_MS)
    console.log(
      `quota ${QUOTA} tokens/min through 3 replicas: busiest minute ${admitted} tokens admitted, ${most} arrived, ${results.length} requests`,
    )
    expect(results.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(30)
    expect(charges.size).toBeGreaterThanOrEqual(30)
    expect(admitted).toBeLessThanOrEqual(QUOTA + PER_REQUEST)
    // Three windows of their own would let up to three quotas through.
    expect(most).toBeLessThanOrEqual(1.5 * QUOTA)
  })
})
