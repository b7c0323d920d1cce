/**
 * Profiles kvgate under the pass-through or streaming load: starts the emulator and kvgate (with
 * `node --cpu-prof`), runs the load, stops kvgate so the profile is written, and prints the functions with
 * the most self time. Where the figures in docs/benchmarks.md name a hot spot, they come from this.
 *
 *   node bench/perf/profile-gateway.js [--load passthrough|streaming] [--policy fifo] [--concurrency 64]
 *     [--duration-ms 5000] [--top 30]      (after npm run bench:perf:build; run from the build directory)
 */
import { mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { runClosedLoop } from './lib/load.js'
import { runStreams } from './lib/sse-load.js'
import { flag } from './lib/table.js'
import { PERF_MODEL, startGatewayProcess, startUpstream } from './lib/targets.js'

const load = flag('load', 'passthrough')
const policy = flag('policy', 'fifo')
const concurrency = flag('concurrency', load === 'streaming' ? 1000 : 64)
const durationMs = flag('duration-ms', 5000)
const top = flag('top', 30)

const directory = mkdtempSync(join(tmpdir(), 'kvgate-perf-profile-'))
const upstream = await startUpstream('sim')
// As in streaming.ts: the zero-latency emulator answers /metrics late under 1,000 streams; relax staleness.
const metricsPoll = load === 'streaming' ? { metricsPoll: { timeoutMs: 10_000, staleAfterMs: 10_000 } } : {}
const gateway = await startGatewayProcess({
  upstreams: [upstream.url],
  policy,
  ...metricsPoll,
  execArgv: ['--cpu-prof', '--cpu-prof-dir', directory],
})
try {
  if (load === 'streaming') {
    const result = await runStreams({
      origin: gateway.url,
      path: '/v1/completions',
      body: { model: PERF_MODEL, prompt: 'Tell me a story', max_tokens: 100, ignore_eos: true, stream: true },
      streams: concurrency,
      warmupMs: 1000,
      durationMs,
    })
    console.error(`${result.chunksPerSecond.toFixed(0)} events/s`)
  } else {
    const result = await runClosedLoop({
      origin: gateway.url,
      path: '/v1/completions',
      body: { model: PERF_MODEL, prompt: 'Say hello', max_tokens: 4, ignore_eos: true },
      concurrency,
      warmupMs: 1000,
      durationMs,
    })
    console.error(
      `${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`,
    )
  }
} finally {
  await gateway.close()
  await upstream.close()
}
const profile = readdirSync(directory).find((name) => name.endsWith('.cpuprofile'))
if (profile === undefined) throw new Error(`no profile written in ${directory}`)
console.error(`profile: ${join(directory, profile)}`)
const summary = fileURLToPath(
  new URL(`./lib/profile-summary${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
)
execFileSync(
  process.execPath,
  [...(summary.endsWith('.ts') ? ['--import', 'tsx'] : []), summary, join(directory, profile), '--top', String(top)],
  { stdio: 'inherit' },
)
