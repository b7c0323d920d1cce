/**
 * Pass-through overhead: requests/s and latency of small non-streaming completions at fixed concurrency,
 * for the upstream called directly, nginx in front of it and kvgate in front of it (admission on, one row
 * per policy). Every repetition runs every target at every concurrency, interleaved, so that the load of the
 * shared machine falls on all of them alike; the table gives medians over repetitions.
 *
 *   npx tsx bench/perf/passthrough.ts [--reps 3] [--duration-ms 3000] [--warmup-ms 500]
 *     [--concurrency 1,64,256] [--policies fifo,vtc,fifo+quiet] [--upstream sim|stub] [--bare 1] [--fastify 1]
 */
import { runClosedLoop, type ClosedLoopResult } from './lib/load.js'
import { cpuMeter, median } from './lib/processes.js'
import { flag, loadNote, printTable } from './lib/table.js'
import { PERF_MODEL, startPerfStack, type UpstreamKind } from './lib/targets.js'

const reps = flag('reps', 3)
const durationMs = flag('duration-ms', 3000)
const warmupMs = flag('warmup-ms', 500)
const concurrencies = flag('concurrency', '1,64,256').split(',').map(Number)
// `fifo+quiet` is kvgate-fifo without its per-request log line (telemetry.logLevel warn): what the line costs.
const policies = flag('policies', 'fifo,vtc,fifo+quiet').split(',').filter(Boolean)
const upstreamKind = flag('upstream', 'sim') as UpstreamKind
// The bare Node proxy row (node:http + undici only) is on unless --bare 0.
const withBareProxy = flag('bare', 1) === 1
// The Fastify + undici row (no kvgate logic) is on unless --fastify 0.
const withFastifyBare = flag('fastify', 1) === 1

// A small completion: a few prompt tokens and 4 output tokens, so the upstream does little per request.
const body = { model: PERF_MODEL, prompt: 'Say hello', max_tokens: 4, ignore_eos: true }

interface Sample extends ClosedLoopResult {
  /** CPU of the proxy process per request, in ms (0 for direct). */
  readonly proxyCpuMsPerRequest: number
  readonly upstreamCpuMsPerRequest: number
}

const stack = await startPerfStack({ upstream: upstreamKind, policies, withBareProxy, withFastifyBare })
for (const reason of stack.skipped) console.error(`skipped ${reason}`)
const samples = new Map<string, Sample[]>()
try {
  for (let rep = 1; rep <= reps; rep += 1) {
    for (const concurrency of concurrencies) {
      for (const target of stack.targets) {
        const pids: Record<string, number> = { upstream: stack.upstream.pid }
        if (target.proxyPid !== undefined) pids['proxy'] = target.proxyPid
        const meter = cpuMeter(pids)
        meter.start()
        const result = await runClosedLoop({
          origin: target.url,
          path: '/v1/completions',
          body,
          headers: { 'x-user-id': 'perf' },
          concurrency,
          warmupMs,
          durationMs,
        })
        // Warm-up requests used CPU too: share the CPU over every request sent, estimated by rate × time.
        const cpu = meter.stop()
        const sent = result.requestsPerSecond * ((durationMs + warmupMs) / 1000)
        const sample: Sample = {
          ...result,
          proxyCpuMsPerRequest: sent > 0 ? (cpu['proxy'] ?? 0) / sent : Number.NaN,
          upstreamCpuMsPerRequest: sent > 0 ? (cpu['upstream'] ?? 0) / sent : Number.NaN,
        }
        const key = `${target.name}@${concurrency}`
        samples.set(key, [...(samples.get(key) ?? []), sample])
        console.error(
          `rep ${rep} ${key}: ${result.requestsPerSecond.toFixed(0)} req/s p50 ${result.p50Ms.toFixed(2)} ms p99 ${result.p99Ms.toFixed(2)} ms errors ${result.errors}`,
        )
      }
    }
  }
} finally {
  await stack.close()
}

const rows: (string | number)[][] = []
for (const concurrency of concurrencies) {
  const direct = samples.get(`direct@${concurrency}`) ?? []
  const nginx = samples.get(`nginx@${concurrency}`) ?? []
  for (const target of stack.targets) {
    const runs = samples.get(`${target.name}@${concurrency}`) ?? []
    // Differences and ratios are taken within each repetition (same machine load), then the median.
    const addedP50 = median(runs.map((run, i) => run.p50Ms - (direct[i]?.p50Ms ?? Number.NaN)))
    const addedP99 = median(runs.map((run, i) => run.p99Ms - (direct[i]?.p99Ms ?? Number.NaN)))
    const vsNginx = median(runs.map((run, i) => run.requestsPerSecond / (nginx[i]?.requestsPerSecond ?? Number.NaN)))
    rows.push([
      target.name,
      concurrency,
      median(runs.map((run) => run.requestsPerSecond)),
      `${Math.round(vsNginx * 100)}%`,
      median(runs.map((run) => run.p50Ms)),
      median(runs.map((run) => run.p99Ms)),
      target.name === 'direct' ? '-' : addedP50.toFixed(2),
      target.name === 'direct' ? '-' : addedP99.toFixed(2),
      target.proxyPid === undefined ? '-' : median(runs.map((run) => run.proxyCpuMsPerRequest * 1000)).toFixed(0),
      runs.reduce((sum, run) => sum + run.errors, 0),
    ])
  }
}
printTable(
  `Pass-through, /v1/completions (4 output tokens), ${upstreamKind} upstream, median of ${reps} × ${durationMs} ms, ${loadNote()} at the end`,
  ['target', 'conc.', 'req/s', 'vs nginx', 'p50 ms', 'p99 ms', '+p50 ms', '+p99 ms', 'proxy CPU µs/req', 'errors'],
  rows,
)
