/**
 * Several gateways, one state (issue 14): the figures of docs/replicas.md, each scenario side by side with
 * `state.store: memory` (every gateway its own ledger) where the comparison says something.
 *
 *   npm run bench:perf:build && cd node_modules/.cache/kvgate-perf/bench/perf && node replicas.js
 *     [--only burst,fairness,quota,kill,outage,cost] [--redis-server /usr/bin/redis-server]
 *
 * The emulator and the gateways run in this process (the kill -9 scenario forks one gateway), the shared
 * store is a redis-server on loopback that the script starts, stops and restarts itself.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createScaledClock, createSeededRandom, createSystemClock, type Clock } from '../../src/core/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { createRedisStateStore } from '../../src/state/index.js'
import { buildText } from '../../src/tokens/index.js'
import { startGatewayProcess } from './lib/targets.js'
import { startRedisServer } from './lib/redis.js'
import { flag, loadNote, printTable } from './lib/table.js'

const only = new Set(flag('only', 'burst,fairness,quota,kill,outage,cost').split(','))
const redis = await startRedisServer(flag('redis-server', 'redis-server'))
const BACKEND = 'backend-0' // the name the forked gateway (lib/gateway-child.ts) gives its one backend
let prefixes = 0

interface Stack {
  sim: SimHandle
  gateways: Gateway[]
  urls: string[]
  close(): Promise<void>
}

async function stack(options: {
  store: 'memory' | 'redis'
  count?: number
  sim?: Record<string, unknown>
  config?: Record<string, unknown>
  clock?: Clock
  upstream?: (url: string) => Promise<string>
}): Promise<Stack & { prefix: string }> {
  const sim = await startSim({ speed: 20, numGpuBlocks: 256, seed: 1, logger: false, ...options.sim })
  const upstream = options.upstream === undefined ? sim.url : await options.upstream(sim.url)
  const prefix = `bench${++prefixes}:`
  const gateways: Gateway[] = []
  for (let i = 0; i < (options.count ?? 3); i++) {
    const config = parseConfig({
      ...options.config,
      backends: [{ url: upstream, name: BACKEND }],
      metricsPoll: { intervalMs: 100, staleAfterMs: 2_000, ...(options.config?.['metricsPoll'] as object) },
      state:
        options.store === 'redis'
          ? { store: 'redis', url: redis.url, keyPrefix: prefix, replicaId: `gw${i}`, expectedReplicas: 3 }
          : { store: 'memory' },
      telemetry: { logLevel: 'silent' },
    })
    gateways.push(await createGateway({ config, logger: false, clock: options.clock ?? createSystemClock() }))
  }
  const urls = await Promise.all(gateways.map((g) => g.listen({ port: 0, host: '127.0.0.1' })))
  while (!gateways.every((g) => g.backends()[0]?.usable)) await sleep(20)
  return {
    sim,
    gateways,
    urls,
    prefix,
    async close() {
      await Promise.all(gateways.map((g) => g.close()))
      await sim.close()
    },
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
let prompts = 0

async function stream(url: string, user: string, promptTokens: number, outputTokens: number) {
  const startedMs = performance.now()
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({
      model: 'kvgate-sim',
      messages: [{ role: 'user', content: buildText(promptTokens - 2, createSeededRandom(++prompts)) }],
      max_tokens: outputTokens,
      ignore_eos: true,
      stream: true,
    }),
  })
  let text = ''
  let ttftMs = Number.NaN
  for await (const chunk of response.body) {
    text += String(chunk)
    if (Number.isNaN(ttftMs) && /"content":"[^"]/.test(text)) ttftMs = performance.now() - startedMs
  }
  const reason = response.headers['x-kvgate-reject-reason']
  return { status: response.statusCode, done: text.includes('[DONE]'), ttftMs, reason: String(reason ?? '') }
}

const percentile = (values: readonly number[], p: number): number =>
  [...values].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * values.length) - 1)] ?? Number.NaN

async function preemptions(sim: SimHandle): Promise<number> {
  const text = await (await request(`${sim.url}/metrics`)).body.text()
  return Number(
    text
      .split('\n')
      .find((l) => l.startsWith('vllm:num_preemptions_total'))
      ?.split(' ')
      .at(-1),
  )
}

async function warm(urls: readonly string[], n: number): Promise<void> {
  await Promise.all(
    urls.flatMap((url) => Array.from({ length: n }, async () => (await request(`${url}/health`)).body.dump())),
  )
}

const ledgers = (s: Stack) => s.gateways.map((g) => g.ledgerReservedTokens()).join(' / ')

// --- the overload burst split over three gateways --------------------------------------------------------

if (only.has('burst')) {
  const rows: (string | number)[][] = []
  for (const store of ['memory', 'redis'] as const) {
    const s = await stack({ store, config: { admission: { defaultDeadlineMs: 120_000, maxDeadlineMs: 120_000 } } })
    await warm(s.urls, 34)
    const started = performance.now()
    const results = await Promise.all(
      s.urls.flatMap((url, i) => Array.from({ length: i === 0 ? 34 : 33 }, () => stream(url, 'u', 500, 200))),
    )
    const seconds = (performance.now() - started) / 1000
    while (s.gateways.some((g) => g.ledgerReservedTokens() > 0)) await sleep(20)
    rows.push([
      store,
      results.filter((r) => r.status === 200 && r.done).length,
      results.filter((r) => r.status === 429).length,
      await preemptions(s.sim),
      percentile(
        results.map((r) => r.ttftMs),
        50,
      ),
      percentile(
        results.map((r) => r.ttftMs),
        99,
      ),
      seconds,
      ledgers(s),
    ])
    await s.close()
  }
  printTable(
    `Burst: 100 streaming requests (500 prompt + 200 output tokens) split over 3 gateways, one emulator of 256 blocks × 16, ${loadNote()}`,
    [
      'state.store',
      'completed',
      '429',
      'emulator preemptions',
      'TTFT p50 ms',
      'TTFT p99 ms',
      'seconds',
      'ledger after (each gateway)',
    ],
    rows,
  )
}

// --- fairness under vtc: heavy on three replicas, light on one -------------------------------------------

if (only.has('fairness')) {
  const rows: (string | number)[][] = []
  for (const store of ['memory', 'redis'] as const) {
    const s = await stack({
      store,
      sim: { numGpuBlocks: 64, speed: 10, seed: 3 },
      config: { policy: { name: 'vtc', options: {} }, admission: { defaultDeadlineMs: 120_000 } },
    })
    await warm(s.urls, 26)
    const served = new Map<string, number>()
    let counting = false
    let running = true
    const loop = (url: string, user: string, slots: number) =>
      Array.from({ length: slots }, async () => {
        while (running) {
          const r = await stream(url, user, 100, 100)
          if (r.status === 200 && r.done && counting) served.set(user, (served.get(user) ?? 0) + 300)
        }
      })
    const loops = [...s.urls.flatMap((url) => loop(url, 'heavy', 20)), ...loop(s.urls[0] as string, 'light', 6)]
    await sleep(2_000)
    counting = true
    await sleep(10_000)
    counting = false
    running = false
    await Promise.all(loops)
    const heavy = served.get('heavy') ?? 0
    const light = served.get('light') ?? 0
    rows.push([store, heavy, light, light / heavy, ledgers(s)])
    await s.close()
  }
  printTable(
    `Fairness (vtc): heavy keeps 60 requests outstanding over 3 gateways, light 6 through one; weighted tokens served in 10 s, one emulator of 64 blocks, ${loadNote()}`,
    ['state.store', 'heavy service', 'light service', 'light / heavy', 'ledger after'],
    rows,
  )
}

// --- a quota across replicas --------------------------------------------------------------------------

if (only.has('quota')) {
  const SPEED = 10
  const QUOTA = 3_000
  const rows: (string | number)[][] = []
  for (const store of ['memory', 'redis'] as const) {
    const clock = createScaledClock(SPEED)
    const arrivals: number[] = []
    const recorder = createServer((req, res) => {
      if (req.method === 'POST') arrivals.push(clock.wallNow())
      request(`${recorderUpstream}${req.url}`, {
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
    let recorderUpstream = ''
    const s = await stack({
      store,
      clock,
      sim: { speed: SPEED, seed: 4 },
      upstream: async (url) => {
        recorderUpstream = url
        await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve))
        return `http://127.0.0.1:${(recorder.address() as AddressInfo).port}`
      },
      config: {
        policy: { name: 'tpm', options: {} },
        users: [{ name: 'q', tokensPerMinute: QUOTA }],
        admission: { defaultDeadlineMs: 600_000, maxDeadlineMs: 600_000 },
        metricsPoll: { intervalMs: 500, staleAfterMs: 20_000, timeoutMs: 10_000 },
      },
    })
    await warm(s.urls, 3)
    await Promise.all(s.urls.map((url) => stream(url, 'warm', 100, 4)))
    arrivals.splice(0)
    const charges = new Map<string, number>()
    const reader = new Redis(redis.url)
    const poll = setInterval(() => {
      reader.zrange(`${s.prefix}q:q`, '0', '-1', 'WITHSCORES').then(
        (z) => {
          for (let i = 0; i + 1 < z.length; i += 2)
            if (!z[i]?.endsWith(':over')) charges.set(z[i] as string, Number(z[i + 1]))
        },
        () => undefined,
      )
    }, 100)
    const endAt = clock.wallNow() + 190_000
    const served: number[] = []
    await Promise.all(
      s.urls.flatMap((url) =>
        Array.from({ length: 3 }, async () => {
          while (clock.wallNow() < endAt) if ((await stream(url, 'q', 100, 100)).status === 200) served.push(1)
        }),
      ),
    )
    clearInterval(poll)
    reader.disconnect()
    const busiest = (times: number[], windowMs: number): number => {
      const sorted = [...times].sort((a, b) => a - b)
      let most = 0
      for (let i = 0, j = 0; i < sorted.length; i++) {
        while ((sorted[j] as number) <= (sorted[i] as number) - windowMs) j++
        most = Math.max(most, i - j + 1)
      }
      return most * 200
    }
    rows.push([
      store,
      QUOTA,
      served.length,
      store === 'redis' ? busiest([...charges.values()], 60_000) : 'n/a (no shared log)',
      busiest(arrivals, 60_000),
      busiest(arrivals, 58_000),
    ])
    await s.close()
    recorder.close()
  }
  printTable(
    `Quota: user q with tokensPerMinute 3,000 (200 tokens a request) sends through 3 gateways with 3 requests outstanding on each, 190 s on a clock running ${SPEED}× (tpm), ${loadNote()}`,
    [
      'state.store',
      'quota',
      'requests served',
      'busiest 60 s, admissions (tokens)',
      'busiest 60 s at the emulator',
      'busiest 58 s at the emulator',
    ],
    rows,
  )
}

// --- kill -9 of a replica mid-burst ------------------------------------------------------------------

if (only.has('kill')) {
  const LEASE_MS = 5_000
  const s = await stack({ store: 'redis', count: 2, config: { admission: { defaultDeadlineMs: 120_000 } } })
  const child = await startGatewayProcess({
    upstreams: [s.sim.url],
    policy: 'fifo',
    config: {
      telemetry: { logLevel: 'warn' },
      metricsPoll: { intervalMs: 100, staleAfterMs: 2_000 },
      admission: { defaultDeadlineMs: 120_000 },
      state: { store: 'redis', url: redis.url, keyPrefix: s.prefix, replicaId: 'victim', leaseMs: LEASE_MS },
    },
  })
  const urls = [...s.urls, child.url]
  await warm(urls, 34)
  const results = Promise.all(
    urls.flatMap((url) =>
      Array.from({ length: 33 }, () =>
        stream(url, 'u', 500, 200).catch(() => ({ status: 0, done: false, ttftMs: Number.NaN })),
      ),
    ),
  )
  const r = new Redis(redis.url)
  while (!(Number(await r.hget(`${s.prefix}o:${BACKEND}`, 'victim')) > 0)) await sleep(5)
  const held = Number(await r.hget(`${s.prefix}o:${BACKEND}`, 'victim'))
  const killedAt = performance.now()
  process.kill(child.pid, 'SIGKILL')
  while ((await r.hget(`${s.prefix}o:${BACKEND}`, 'victim')) !== null) await sleep(20)
  const freedMs = performance.now() - killedAt
  const done = await results
  while (s.gateways.some((g) => g.ledgerReservedTokens() > 0)) await sleep(20)
  printTable(
    `kill -9 of one of 3 gateways mid-burst (100 requests of 500 + 200 tokens), state.leaseMs ${LEASE_MS}, ${loadNote()}`,
    [
      'victim outstanding at kill (tokens)',
      'freed after (ms)',
      'survivors completed',
      'victim requests cut',
      'emulator preemptions',
      'survivor ledgers after',
    ],
    [
      [
        held,
        freedMs,
        done.slice(0, 66).filter((x) => x.status === 200 && x.done).length,
        done.slice(66).filter((x) => !x.done).length,
        await preemptions(s.sim),
        ledgers(s),
      ],
    ],
  )
  r.disconnect()
  await child.close().catch(() => undefined)
  await s.close()
}

// --- Redis stopped for 10 s mid-burst ----------------------------------------------------------------

if (only.has('outage')) {
  const s = await stack({ store: 'redis', config: { admission: { defaultDeadlineMs: 120_000 } } })
  await warm(s.urls, 8)
  let running = true
  let phase = 'before'
  const statuses = new Map<string, number>()
  const loops = s.urls.flatMap((url) =>
    Array.from({ length: 8 }, async () => {
      while (running) {
        const r = await stream(url, 'u', 500, 200).catch(() => ({ status: 0, done: false, ttftMs: Number.NaN }))
        const key = `${phase}: ${r.status}${'reason' in r && r.reason ? ` ${r.reason}` : ''}`
        statuses.set(key, (statuses.get(key) ?? 0) + 1)
      }
    }),
  )
  const confirmed = async (): Promise<number> => {
    let total = 0
    for (const url of s.urls) {
      const text = await (await request(`${url}/metrics`)).body.text()
      total += Number(/^kvgate_state_confirmations_total\{result="confirmed"\} (\S+)$/m.exec(text)?.[1] ?? 0)
    }
    return total
  }
  const degraded = async (): Promise<boolean[]> =>
    Promise.all(
      s.urls.map(
        async (url) =>
          ((await (await request(`${url}/health`)).body.json()) as { state: { degraded: boolean } }).state.degraded,
      ),
    )
  await sleep(3_000)
  await redis.stop()
  phase = 'during'
  const stoppedAt = performance.now()
  let degradedAfterMs = Number.NaN
  while (performance.now() - stoppedAt < 10_000) {
    if (Number.isNaN(degradedAfterMs) && (await degraded()).every(Boolean))
      degradedAfterMs = performance.now() - stoppedAt
    await sleep(20)
  }
  const before = await confirmed()
  await redis.start()
  phase = 'after'
  const backAt = performance.now()
  while ((await degraded()).some(Boolean)) await sleep(10)
  const recoveredMs = performance.now() - backAt
  while ((await confirmed()) <= before) await sleep(10)
  const confirmingMs = performance.now() - backAt
  await sleep(3_000)
  running = false
  await Promise.all(loops)
  if (process.env['DEBUG_OUTAGE']) {
    for (const url of s.urls) {
      const text = await (await request(`${url}/metrics`)).body.text()
      console.error(
        text
          .split('\n')
          .filter((l) => l.startsWith('kvgate_state_confirmations_total'))
          .join('\n'),
      )
    }
  }
  while (s.gateways.some((g) => g.ledgerReservedTokens() > 0)) await sleep(20)
  printTable(
    `Redis stopped (SIGKILL) for 10 s under closed-loop load (24 streams of 500 + 200 tokens over 3 gateways), restarted empty, ${loadNote()}`,
    [
      'all degraded after (ms)',
      'all back on the shared ledger after its return (ms)',
      'first confirmed admission after its return (ms)',
      'answers (before / during / after the outage)',
      'emulator preemptions',
      'ledgers after',
    ],
    [
      [
        degradedAfterMs,
        recoveredMs,
        confirmingMs,
        [...statuses].map(([status, n]) => `${status} × ${n}`).join('; '),
        await preemptions(s.sim),
        ledgers(s),
      ],
    ],
  )
  await s.close()
}

// --- what a confirmation costs --------------------------------------------------------------------------

if (only.has('cost')) {
  const store = await createRedisStateStore({ url: redis.url, keyPrefix: 'cost:', commandTimeoutMs: 1_000 })
  const seq = await store.beginPoll('r', 'b', [])
  await store.completePoll('b', seq, { capacityTokens: 1e9, usedTokens: 0 })
  const timings = (n: number, live: number) => async () => {
    // `live` reservations stay in the book, as under load; each timed admit is released at once after.
    for (let i = 0; i < live; i++) {
      await store.admit({
        replicaId: 'r',
        backendId: 'b',
        requestId: `live-${live}-${i}`,
        user: 'u',
        promptTokens: 100,
        reservedTokens: 300,
        headroomRatio: 0.05,
        nowMs: Date.now(),
      })
    }
    const admits: number[] = []
    const releases: number[] = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      await store.admit({
        replicaId: 'r',
        backendId: 'b',
        requestId: `t-${live}-${i}`,
        user: 'u',
        promptTokens: 100,
        reservedTokens: 300,
        headroomRatio: 0.05,
        nowMs: Date.now(),
        fairShare: { weight: 1, wIn: 1, wOut: 2 },
      })
      const t1 = performance.now()
      await store.release(`t-${live}-${i}`, 200, Date.now())
      admits.push(t1 - t0)
      releases.push(performance.now() - t1)
    }
    const q = (values: number[], p: number) =>
      [...values].sort((a, b) => a - b)[Math.ceil((p / 100) * values.length) - 1] ?? Number.NaN
    return [live, n, q(admits, 50) * 1000, q(admits, 99) * 1000, q(releases, 50) * 1000, q(releases, 99) * 1000]
  }
  const rows = [await timings(5_000, 0)(), await timings(5_000, 100)(), await timings(2_000, 1_000)()]
  printTable(
    `Confirmation cost: one admit (fit + VTC gate + charge) and one release, sequential, Redis on loopback, ${loadNote()}`,
    ['live reservations', 'samples', 'admit p50 µs', 'admit p99 µs', 'release p50 µs', 'release p99 µs'],
    rows,
  )
  await store.close()
}

await redis.stop()
process.exit(0)
