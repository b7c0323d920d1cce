/**
 * Streaming: SSE events per second forwarded to clients with 1,000 streams open at once, and the CPU each
 * proxy spends per 1,000 events, for the upstream called directly, nginx and kvgate (one row per policy).
 * "Events/s per proxy core" = events forwarded per CPU-second of the proxy process: what one core would
 * carry if the proxy had it to itself, which is the figure that matters on a machine shared with the load
 * client and the upstream.
 *
 *   npx tsx bench/perf/streaming.ts [--reps 3] [--streams 1000] [--tokens 100] [--duration-ms 5000]
 *     [--warmup-ms 2000] [--policies fifo,vtc] [--upstream sim|stub] [--bare 1] [--relaxed-poll 1]
 */
import { runStreams, type StreamLoadResult } from './lib/sse-load.js'
import { cpuMeter, median } from './lib/processes.js'
import { flag, loadNote, printTable } from './lib/table.js'
import { PERF_MODEL, startPerfStack, type UpstreamKind } from './lib/targets.js'

const reps = flag('reps', 3)
const streams = flag('streams', 1000)
const tokens = flag('tokens', 100)
const durationMs = flag('duration-ms', 5000)
const warmupMs = flag('warmup-ms', 2000)
const policies = flag('policies', 'fifo,vtc').split(',').filter(Boolean)
const upstreamKind = flag('upstream', 'sim') as UpstreamKind
// The bare Node proxy row (node:http + undici only) is on unless --bare 0.
const withBareProxy = flag('bare', 1) === 1

/**
 * Under 1,000 streams at zero latency the emulator's event loop answers GET /metrics seconds late (4 s
 * measured with curl on the loaded 2-core machine), and kvgate then rightly takes it out of admission (503):
 * with the defaults (1 s timeout, stale after 1 s) the kvgate rows would measure 503s, not forwarding. The
 * benchmark gives the poll 10 s; `--relaxed-poll 0` keeps the defaults.
 */
const RELAXED_POLL = flag('relaxed-poll', 1) === 1 ? { timeoutMs: 10_000, staleAfterMs: 10_000 } : undefined
const body = { model: PERF_MODEL, prompt: 'Tell me a story', max_tokens: tokens, ignore_eos: true, stream: true }

interface Sample extends StreamLoadResult {
  /** The load client's own CPU (this process): at 100% of a core, the client is the limit. */
  readonly clientCpuMs: number
  readonly proxyCpuMs: number
  readonly upstreamCpuMs: number
  readonly windowMs: number
}

const stack = await startPerfStack({
  upstream: upstreamKind,
  policies,
  withBareProxy,
  ...(RELAXED_POLL === undefined ? {} : { metricsPoll: RELAXED_POLL }),
})
for (const reason of stack.skipped) console.error(`skipped ${reason}`)
const samples = new Map<string, Sample[]>()
try {
  for (let rep = 1; rep <= reps; rep += 1) {
    for (const target of stack.targets) {
      const pids: Record<string, number> = { upstream: stack.upstream.pid }
      if (target.proxyPid !== undefined) pids['proxy'] = target.proxyPid
      const meter = cpuMeter(pids)
      let cpu: Record<string, number> = {}
      let openedAt = 0
      let windowMs = 0
      let clientCpu = process.cpuUsage()
      const result = await runStreams({
        origin: target.url,
        path: '/v1/completions',
        body,
        headers: { 'x-user-id': 'perf' },
        streams,
        warmupMs,
        durationMs,
        onWindow(edge) {
          if (edge === 'start') {
            meter.start()
            clientCpu = process.cpuUsage()
            openedAt = performance.now()
          } else {
            cpu = meter.stop()
            clientCpu = process.cpuUsage(clientCpu)
            windowMs = performance.now() - openedAt
          }
        },
      })
      const clientCpuMs = (clientCpu.user + clientCpu.system) / 1000
      const sample: Sample = {
        ...result,
        clientCpuMs,
        proxyCpuMs: cpu['proxy'] ?? 0,
        upstreamCpuMs: cpu['upstream'] ?? 0,
        windowMs,
      }
      samples.set(target.name, [...(samples.get(target.name) ?? []), sample])
      console.error(
        `rep ${rep} ${target.name}: ${result.chunksPerSecond.toFixed(0)} events/s, proxy CPU ${sample.proxyCpuMs} ms, upstream CPU ${sample.upstreamCpuMs} ms, client CPU ${clientCpuMs.toFixed(0)} ms over ${windowMs.toFixed(0)} ms, ${result.completedStreams} streams done, ${result.errors} errors`,
      )
      // Let the upstream drop the streams cut at the end of the window before the next target starts.
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  }
} finally {
  await stack.close()
}

const rows = stack.targets.map((target) => {
  const runs = samples.get(target.name) ?? []
  const direct = samples.get('direct') ?? []
  const isProxy = target.proxyPid !== undefined
  return [
    target.name,
    median(runs.map((run) => run.chunksPerSecond)),
    `${Math.round(median(runs.map((run, i) => run.chunksPerSecond / (direct[i]?.chunksPerSecond ?? Number.NaN))) * 100)}%`,
    isProxy ? median(runs.map((run) => (run.proxyCpuMs / run.windowMs) * 100)).toFixed(0) : '-',
    isProxy ? median(runs.map((run) => (run.proxyCpuMs / run.chunks) * 1000)).toFixed(1) : '-',
    isProxy ? median(runs.map((run) => run.chunks / (run.proxyCpuMs / 1000))) : '-',
    median(runs.map((run) => (run.upstreamCpuMs / run.chunks) * 1000)).toFixed(1),
    median(runs.map((run) => (run.upstreamCpuMs / run.windowMs) * 100)).toFixed(0),
    median(runs.map((run) => (run.clientCpuMs / run.windowMs) * 100)).toFixed(0),
    runs.reduce((sum, run) => sum + run.errors, 0),
  ]
})
printTable(
  `Streaming, ${streams} concurrent streams of ${tokens} tokens, ${upstreamKind} upstream, median of ${reps} × ${durationMs} ms, ${loadNote()} at the end`,
  [
    'target',
    'events/s',
    'vs direct',
    'proxy CPU %',
    'proxy CPU ms / 1k events',
    'events/s per proxy core',
    'upstream CPU ms / 1k events',
    'upstream CPU %',
    'client CPU %',
    'errors',
  ],
  rows,
)
