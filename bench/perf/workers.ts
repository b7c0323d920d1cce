/**
 * What sharing the state costs, and what `kvgate serve --workers N` buys: requests/s and latency of small
 * non-streaming completions through kvgate with `state.store: memory`, with `redis` (one confirmation round
 * trip per admission, Redis on loopback), and with `--workers 2` on redis, next to the upstream called
 * directly and nginx. Targets interleaved in every repetition, medians over repetitions (as passthrough.ts).
 *
 *   npm run bench:perf:build && cd node_modules/.cache/kvgate-perf/bench/perf && node workers.js
 *     [--reps 3] [--duration-ms 3000] [--concurrency 1,64] [--workers 2]
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { runClosedLoop, type ClosedLoopResult } from './lib/load.js'
import { startNginx } from './lib/nginx.js'
import { cpuTimeMs, freePort, median, waitForHttp } from './lib/processes.js'
import { startRedisServer } from './lib/redis.js'
import { flag, loadNote, printTable } from './lib/table.js'
import { PERF_MODEL, startGatewayProcess, startUpstream } from './lib/targets.js'

const reps = flag('reps', 3)
const durationMs = flag('duration-ms', 3000)
const concurrencies = flag('concurrency', '1,64').split(',').map(Number)
const workers = flag('workers', 2)
const body = { model: PERF_MODEL, prompt: 'Say hello', max_tokens: 4, ignore_eos: true }

const redis = await startRedisServer(flag('redis-server', 'redis-server'))
const upstream = await startUpstream('sim')
const closers: (() => Promise<void>)[] = []
const targets: { name: string; url: string; pids: () => number[] }[] = [
  { name: 'direct', url: upstream.url, pids: () => [] },
]
try {
  const nginx = await startNginx({ upstream: upstream.url })
  closers.push(() => nginx.close())
  targets.push({ name: 'nginx', url: nginx.url, pids: () => [nginx.pid] })
} catch (error) {
  console.error(`skipped nginx: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`)
}
const quiet = { telemetry: { logLevel: 'warn' } }
const memory = await startGatewayProcess({ upstreams: [upstream.url], policy: 'fifo', config: quiet })
closers.push(() => memory.close())
targets.push({ name: 'kvgate memory', url: memory.url, pids: () => [memory.pid] })
const shared = await startGatewayProcess({
  upstreams: [upstream.url],
  policy: 'fifo',
  config: { ...quiet, state: { store: 'redis', url: redis.url, keyPrefix: 'one:' } },
})
closers.push(() => shared.close())
targets.push({ name: 'kvgate redis', url: shared.url, pids: () => [shared.pid] })

// `kvgate serve --workers N` from the package's own build (dist/, `npm run build`), as an operator runs it:
// this file runs from node_modules/.cache/kvgate-perf/bench/perf, five levels below the package root.
const port = await freePort()
const cli = fileURLToPath(new URL('../../../../../dist/cli.js', import.meta.url))
const group = spawn(
  process.execPath,
  [cli, 'serve', '--workers', String(workers), '--host', '127.0.0.1', '--port', String(port), '-b', upstream.url],
  {
    env: { ...process.env, KVGATE_STATE_STORE: 'redis', KVGATE_STATE_URL: redis.url, KVGATE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
)
const groupUrl = `http://127.0.0.1:${port}`
await waitForHttp(`${groupUrl}/health`, group)
closers.push(async () => {
  const exited = new Promise((resolve) => group.once('exit', resolve))
  group.kill('SIGTERM')
  await exited
})
/** The primary's children, the workers, for their CPU (Linux: /proc/PID/task/PID/children). */
const childPids = (): number[] => {
  const pid = group.pid ?? 0
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()
    return text === '' ? [] : text.split(/\s+/).map(Number)
  } catch {
    return []
  }
}
targets.push({ name: `kvgate redis --workers ${workers}`, url: groupUrl, pids: () => [group.pid ?? 0, ...childPids()] })

const samples = new Map<string, (ClosedLoopResult & { cpuMsPerRequest: number })[]>()
try {
  for (let rep = 1; rep <= reps; rep++) {
    for (const concurrency of concurrencies) {
      for (const target of targets) {
        const pids = target.pids()
        const before = pids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0)
        const result = await runClosedLoop({
          origin: target.url,
          path: '/v1/completions',
          body,
          headers: { 'x-user-id': 'perf' },
          concurrency,
          warmupMs: 500,
          durationMs,
        })
        const cpu = pids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0) - before
        const sent = result.requestsPerSecond * ((durationMs + 500) / 1000)
        const key = `${target.name}@${concurrency}`
        samples.set(key, [
          ...(samples.get(key) ?? []),
          { ...result, cpuMsPerRequest: sent > 0 ? cpu / sent : Number.NaN },
        ])
        console.error(
          `rep ${rep} ${key}: ${result.requestsPerSecond.toFixed(0)} req/s p50 ${result.p50Ms.toFixed(2)} ms`,
        )
      }
    }
  }
} finally {
  for (const close of closers.reverse()) await close().catch(() => undefined)
  await upstream.close()
  await redis.stop()
}

const rows: (string | number)[][] = []
for (const concurrency of concurrencies) {
  const base = samples.get(`kvgate memory@${concurrency}`) ?? []
  const nginxRps = median((samples.get(`nginx@${concurrency}`) ?? []).map((s) => s.requestsPerSecond))
  for (const target of targets) {
    const list = samples.get(`${target.name}@${concurrency}`) ?? []
    const rps = median(list.map((s) => s.requestsPerSecond))
    rows.push([
      target.name,
      concurrency,
      rps,
      Number.isFinite(nginxRps) ? `${((rps / nginxRps) * 100).toFixed(0)}%` : 'n/a',
      median(list.map((s) => s.p50Ms)),
      median(list.map((s) => s.p99Ms)),
      target.name.startsWith('kvgate') ? median(list.map((s, i) => s.p50Ms - (base[i]?.p50Ms ?? Number.NaN))) : '-',
      target.name === 'direct' ? '-' : median(list.map((s) => s.cpuMsPerRequest * 1000)),
      list.reduce((sum, s) => sum + s.errors, 0),
    ])
  }
}
printTable(
  `Shared state and workers: /v1/completions (4 output tokens), zero-latency emulator, median of ${reps} × ${durationMs} ms, ${loadNote()}`,
  ['target', 'conc.', 'req/s', 'vs nginx', 'p50 ms', 'p99 ms', 'p50 vs kvgate memory ms', 'proxy CPU µs/req', 'errors'],
  rows,
)
process.exit(0)
