/**
 * Polling: the CPU kvgate spends polling its backends' /metrics every 100 ms, with 1 and 16 backends (16
 * emulators in one process, idle: the cost measured is kvgate's poll, parse and state update of each). Two
 * rows per count: the poller alone (src/upstream's backend pool in a bare process) and a whole idle kvgate
 * (poller + dispatcher run on every poll + gauges), minus nothing: the figure is what the process uses.
 *
 *   npx tsx bench/perf/polling.ts [--reps 3] [--window-ms 10000] [--interval-ms 100] [--backends 1,16]
 *     [--upstream sim|stub]
 */
import { cpuTimeMs, forkServer, median, type ServerProcess } from './lib/processes.js'
import { flag, loadNote, printTable } from './lib/table.js'
import { startGatewayProcess, startUpstream, type UpstreamKind } from './lib/targets.js'

const reps = flag('reps', 3)
const windowMs = flag('window-ms', 10_000)
const intervalMs = flag('interval-ms', 100)
const counts = flag('backends', '1,16').split(',').map(Number)
const upstreamKind = flag('upstream', 'sim') as UpstreamKind
const settleMs = 2000 // first polls, JIT, and the gateway's start-up work are not counted

async function measure(
  start: () => Promise<ServerProcess>,
  upstreamPid: number,
): Promise<{ cpuMs: number; upstreamCpuMs: number }> {
  const server = await start()
  try {
    await new Promise((resolve) => setTimeout(resolve, settleMs))
    const before = cpuTimeMs(server.pid)
    const upstreamBefore = cpuTimeMs(upstreamPid)
    await new Promise((resolve) => setTimeout(resolve, windowMs))
    return { cpuMs: cpuTimeMs(server.pid) - before, upstreamCpuMs: cpuTimeMs(upstreamPid) - upstreamBefore }
  } finally {
    await server.close()
  }
}

const maxBackends = Math.max(...counts)
const upstream = await startUpstream(upstreamKind, {}, maxBackends)
const samples = new Map<string, { cpuMs: number; upstreamCpuMs: number }[]>()
const add = (key: string, sample: { cpuMs: number; upstreamCpuMs: number }): void => {
  samples.set(key, [...(samples.get(key) ?? []), sample])
  console.error(`${key}: ${sample.cpuMs} ms CPU (upstream ${sample.upstreamCpuMs} ms) over ${windowMs} ms`)
}
let gatewayError: string | undefined
try {
  for (let rep = 1; rep <= reps; rep += 1) {
    for (const backends of counts) {
      add(
        `poller@${backends}`,
        await measure(
          () => forkServer('./poller-child', { upstreams: upstream.urls.slice(0, backends), intervalMs }),
          upstream.pid,
        ),
      )
      if (gatewayError !== undefined) continue
      try {
        add(
          `kvgate-fifo@${backends}`,
          await measure(
            () => startGatewayProcess({ upstreams: upstream.urls.slice(0, backends), policy: 'fifo' }),
            upstream.pid,
          ),
        )
      } catch (error) {
        gatewayError = error instanceof Error ? error.message.split('\n')[0] : String(error)
        console.error(`kvgate skipped: ${gatewayError}`)
      }
    }
  }
} finally {
  await upstream.close()
}

const rows: (string | number)[][] = []
for (const what of ['poller', 'kvgate-fifo']) {
  for (const backends of counts) {
    const runs = samples.get(`${what}@${backends}`)
    if (runs === undefined) continue
    const polls = backends * (windowMs / intervalMs)
    rows.push([
      what === 'poller' ? 'poller alone' : 'kvgate idle (fifo)',
      backends,
      median(runs.map((run) => (run.cpuMs / windowMs) * 100)).toFixed(2),
      median(runs.map((run) => (run.cpuMs / polls) * 1000)).toFixed(0),
      median(runs.map((run) => (run.upstreamCpuMs / windowMs) * 100)).toFixed(2),
    ])
  }
}
printTable(
  `Polling /metrics every ${intervalMs} ms, median of ${reps} × ${windowMs} ms, ${loadNote()} at the end`,
  ['process', 'backends', 'CPU % of one core', 'CPU µs per poll', 'emulator CPU %'],
  rows,
)
