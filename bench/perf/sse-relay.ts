/**
 * The SSE relay alone (no HTTP in front): CPU per forwarded event of kvgate's relay (src/proxy/sse-relay.ts)
 * on a real stream captured from the emulator, cut into network chunks of 1 event, 8 events, or 1 KB, written
 * to a real loopback socket (whose other end is another process) so the syscalls a `write()` makes are
 * counted. (The candidate relay it was once measured against was adopted in 823e40b; see docs/benchmarks.md.)
 *
 *   node bench/perf/sse-relay.js [--reps 5] [--streams 2000]      (from the tsc build, see package.json)
 */
import { spawn } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { createSseRelay } from '../../src/proxy/index.js'
import { startSim } from '../../src/sim/index.js'
import { median } from './lib/processes.js'
import { flag, printTable } from './lib/table.js'
import { PERF_MODEL, ZERO_LATENCY_SIM } from './lib/targets.js'

const reps = flag('reps', 5)
const streams = flag('streams', 2000)
const TOKENS = 100

/** One streamed completion (100 tokens, usage chunk, [DONE]) exactly as the emulator writes it. */
async function captureStream(): Promise<string> {
  const sim = await startSim({ ...ZERO_LATENCY_SIM, port: 0, host: '127.0.0.1', logger: false })
  try {
    const response = await fetch(`${sim.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: PERF_MODEL,
        prompt: 'Tell me a story',
        max_tokens: TOKENS,
        ignore_eos: true,
        stream: true,
        stream_options: { include_usage: true },
      }),
    })
    return await response.text()
  } finally {
    await sim.close()
  }
}

function cut(text: string, how: 'event' | 'events8' | 'kb'): Uint8Array[] {
  const bytes = new TextEncoder().encode(text)
  if (how === 'kb') {
    const parts: Uint8Array[] = []
    for (let at = 0; at < bytes.length; at += 1024) parts.push(bytes.slice(at, at + 1024))
    return parts
  }
  const events = text.split(/(?<=\n\n)/)
  const per = how === 'event' ? 1 : 8
  const parts: Uint8Array[] = []
  for (let i = 0; i < events.length; i += per) parts.push(new TextEncoder().encode(events.slice(i, i + per).join('')))
  return parts
}

/** A process that reads and discards whatever arrives on a loopback socket. */
async function startSink(): Promise<{ socket: Socket; close(): void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      "require('net').createServer((s) => s.resume()).listen(0, '127.0.0.1', function () { console.log(this.address().port) })",
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const port = await new Promise<number>((resolve) =>
    child.stdout.once('data', (data: Buffer) => resolve(Number(data.toString().trim()))),
  )
  const socket = connect(port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  return {
    socket,
    close() {
      socket.destroy()
      child.kill()
    },
  }
}

interface RunResult {
  cpuNsPerEvent: number
  writesPerEvent: number
}

async function run(chunks: readonly Uint8Array[], socket: Socket, events: number): Promise<RunResult> {
  let writes = 0
  const cpu = process.cpuUsage()
  for (let s = 0; s < streams; s += 1) {
    const relay = createSseRelay({
      stripUsageChunk: true,
      write: (text) => {
        writes += 1
        socket.write(text)
      },
    })
    for (const chunk of chunks) relay.push(chunk)
    relay.end()
    // Let the socket flush between streams, as between network reads, so writes reach the kernel at once.
    if (socket.writableNeedDrain) await new Promise((resolve) => socket.once('drain', resolve))
    if (s % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  const used = process.cpuUsage(cpu)
  return {
    cpuNsPerEvent: ((used.user + used.system) * 1000) / (streams * events),
    writesPerEvent: writes / (streams * events),
  }
}

const text = await captureStream()
const events = text.split('\n\n').length - 1
const sink = await startSink()
const rows: (string | number)[][] = []
try {
  for (const how of ['event', 'events8', 'kb'] as const) {
    const chunks = cut(text, how)
    const results: RunResult[] = []
    for (let rep = 0; rep <= reps; rep += 1) {
      const result = await run(chunks, sink.socket, events)
      if (rep > 0) results.push(result) // rep 0 warms up
    }
    const label = { event: '1 event', events8: '8 events', kb: '1 KB' }[how]
    const ns = median(results.map((r) => r.cpuNsPerEvent))
    rows.push([
      label,
      'src/proxy/sse-relay.ts',
      (ns / 1000).toFixed(2),
      median(results.map((r) => r.writesPerEvent)).toFixed(2),
      Math.round(1e9 / ns),
    ])
  }
} finally {
  sink.close()
}
printTable(
  `SSE relay alone, ${streams} streams of ${events} events (${TOKENS} tokens + usage + [DONE]) per run, median of ${reps}`,
  ['network chunk', 'relay', 'CPU µs / event', 'write() / event', 'events/s per core'],
  rows,
)
