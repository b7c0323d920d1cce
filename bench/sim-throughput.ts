/**
 * How much one emulator process sustains at --speed 1: streamed tokens per second, concurrent streams, CPU
 * and memory per running request. Prints figures for docs/benchmarks.md ("## Emulator").
 *
 *   npm run build && npx tsx bench/sim-throughput.ts [--streams 1000] [--duration-s 20] [--warmup-s 8] [--clients 2]
 *                                   [--prompt-tokens 100] [--output-tokens 1000] [--step-fixed-ms 5]
 *                                   [--running-seq-ms 0.02] [--sim-entry auto|dist|tsx]
 *
 * The emulator runs as `kvgate sim` in its own process (`node dist/cli.js sim`), so its CPU and
 * RSS are read from /proc alone; the load comes from `--clients` child processes, each holding its share of
 * the streams open in a closed loop (a finished stream is replaced at once). Tokens/s is read from the
 * emulator's own `vllm:generation_tokens_total` over the measured window and cross-checked against the SSE
 * events the clients received.
 *
 * The latency model is set so that the modelled step for 1,000 sequences is 25 ms (40,000 tokens/s if the
 * process keeps up): the figure measures the emulator's ceiling, not a GPU's speed. When the process cannot
 * keep up, steps run late and the measured rate falls below the modelled one; both are printed.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Pool, request } from 'undici'
import { createSeededRandom } from '../src/core/index.js'
import { buildText } from '../src/tokens/index.js'
import { freePort } from './perf/lib/processes.js'

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    'duration-s': { type: 'string', default: '20' },
    'warmup-s': { type: 'string', default: '8' },
    clients: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string', default: '100' },
    'output-tokens': { type: 'string', default: '1000' },
    'step-fixed-ms': { type: 'string', default: '5' },
    'running-seq-ms': { type: 'string', default: '0.02' },
    // auto: dist/cli.js when built, else src/cli.ts under tsx.
    'sim-entry': { type: 'string', default: 'auto' },
    // Internal: this script re-runs itself as a load client.
    role: { type: 'string', default: 'main' },
    url: { type: 'string', default: '' },
  },
})

const CLOCK_TICKS_PER_SECOND = 100 // Linux USER_HZ: /proc/PID/stat counts CPU time in these

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match?.[1] ?? 0) * 1024
}

async function scrapeValues(url: string): Promise<Record<string, number>> {
  const res = await request(`${url}/metrics`)
  const text = await res.body.text()
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const match = /^(vllm:[a-z_]+)\{[^}]*\} (\S+)$/.exec(line)
    if (match && !line.includes('_bucket')) out[match[1]!] = (out[match[1]!] ?? 0) + Number(match[2])
  }
  return out
}

/** The emulator's heap in use after a full collection (it runs with --expose-gc). */
async function heapUsed(url: string): Promise<number> {
  const res = await request(`${url}/sim/state?gc=1`)
  const state = (await res.body.json()) as { memory: { heapUsed: number; external: number } }
  return state.memory.heapUsed + state.memory.external
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A load client: keeps `streams` SSE requests open, replacing each as it ends; reports events per second. */
async function runClient(url: string, streams: number, promptTokens: number, outputTokens: number): Promise<void> {
  const pool = new Pool(url, { connections: streams, pipelining: 1, bodyTimeout: 0, headersTimeout: 0 })
  const prompt = buildText(promptTokens, createSeededRandom(process.pid))
  const body = JSON.stringify({ prompt, max_tokens: outputTokens, ignore_eos: true, stream: true })
  let events = 0
  let errors = 0
  let stopping = false
  const one = async (): Promise<void> => {
    while (!stopping) {
      try {
        const res = await pool.request({
          path: '/v1/completions',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        })
        // Count SSE events by their blank-line terminators; a terminator split across chunks is rare and
        // only undercounts the cross-check, never the emulator's own counter.
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          let at = chunk.indexOf('\n\n')
          while (at !== -1) {
            events++
            at = chunk.indexOf('\n\n', at + 2)
          }
        }
      } catch {
        errors++
        await sleep(10)
      }
    }
  }
  const loops = Array.from({ length: streams }, () => one())
  const report = setInterval(() => process.send?.({ events, errors }), 1000)
  process.on('message', (message) => {
    if (message === 'stop') {
      stopping = true
      clearInterval(report)
      void pool.destroy().then(() => process.exit(0))
    }
  })
  await Promise.all(loops)
}

async function main(): Promise<void> {
  const streams = Number(args.streams)
  const durationS = Number(args['duration-s'])
  const warmupS = Number(args['warmup-s'])
  const clients = Number(args.clients)
  const promptTokens = Number(args['prompt-tokens'])
  const outputTokens = Number(args['output-tokens'])
  const stepFixedMs = Number(args['step-fixed-ms'])
  const runningSeqMs = Number(args['running-seq-ms'])
  const modelledStepMs = stepFixedMs + runningSeqMs * streams
  const blocksPerStream = Math.ceil((promptTokens + outputTokens) / 16)

  const dir = mkdtempSync(join(tmpdir(), 'kvgate-sim-bench-'))
  const config = join(dir, 'sim.yaml')
  writeFileSync(
    config,
    [
      `latency: { stepFixedMs: ${stepFixedMs}, prefillTokenMs: 0.001, runningSeqMs: ${runningSeqMs}, contextTokenMs: 0 }`,
      `numGpuBlocks: ${blocksPerStream * streams + 1024}`,
      `maxNumSeqs: ${streams + 64}`,
      'maxNumBatchedTokens: 32768',
      `maxModelLen: ${promptTokens + outputTokens + 16}`,
    ].join('\n'),
  )
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // The emulator runs compiled (`npm run build` → dist/): under tsx, esbuild's keepNames wraps every closure
  // created at run time in a `__name()` call, which costs CPU per request that a real deployment never pays.
  const compiled = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
  const useCompiled = args['sim-entry'] === 'dist' || (args['sim-entry'] === 'auto' && existsSync(compiled))
  const entry = useCompiled ? [compiled] : ['--import', 'tsx', fileURLToPath(new URL('../src/cli.ts', import.meta.url))]
  if (!useCompiled)
    console.warn('dist/cli.js not found: running the emulator under tsx (run `npm run build` first for real figures)')
  const sim = spawn(
    process.execPath,
    ['--expose-gc', ...entry, 'sim', '--port', String(port), '--config', config, '--log-level', 'warn'],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  )
  const children: ChildProcess[] = [sim]
  const cleanup = (): void => {
    for (const child of children) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.on('exit', cleanup)
  try {
    for (let i = 0; ; i++) {
      try {
        await (await request(`${url}/health`)).body.dump()
        break
      } catch {
        if (i > 600) throw new Error('the emulator did not start within 60 s')
        await sleep(100)
      }
    }
    const idleRss = rssBytes(sim.pid!)
    const idleHeap = await heapUsed(url)

    const received: Array<{ events: number; errors: number }> = []
    for (let c = 0; c < clients; c++) {
      const share = Math.floor(streams / clients) + (c < streams % clients ? 1 : 0)
      const client = fork(
        fileURLToPath(import.meta.url),
        [
          '--role',
          'client',
          '--url',
          url,
          '--streams',
          String(share),
          '--prompt-tokens',
          String(promptTokens),
          '--output-tokens',
          String(outputTokens),
        ],
        { execArgv: ['--import', 'tsx'] },
      )
      received[c] = { events: 0, errors: 0 }
      client.on('message', (m) => {
        received[c] = m as { events: number; errors: number }
      })
      children.push(client)
    }
    const totalEvents = (): number => received.reduce((sum, r) => sum + r.events, 0)

    await sleep(warmupS * 1000)
    // Every figure comes from samples taken together (scrape, client counts, CPU, RSS) and stamped when the
    // scrape returned, so a slow scrape of a loaded emulator cannot stretch or shrink the window.
    interface Sample {
      atMs: number
      tokens: number
      running: number
      events: number
      cpuMs: number
      rss: number
    }
    const sample = async (): Promise<Sample> => {
      const values = await scrapeValues(url)
      return {
        atMs: performance.now(),
        tokens: values['vllm:generation_tokens_total'] ?? 0,
        running: values['vllm:num_requests_running'] ?? 0,
        events: totalEvents(),
        cpuMs: cpuMs(sim.pid!),
        rss: rssBytes(sim.pid!),
      }
    }
    const samples: Sample[] = [await sample()]
    while (samples.at(-1)!.atMs - samples[0]!.atMs < durationS * 1000) {
      await sleep(1000)
      samples.push(await sample())
    }
    const loadedHeap = await heapUsed(url)
    const runningAtHeap = (await scrapeValues(url))['vllm:num_requests_running'] ?? 0
    const first = samples[0]!
    const last = samples.at(-1)!
    const elapsedS = (last.atMs - first.atMs) / 1000
    const tokens = last.tokens - first.tokens
    const cpu = (last.cpuMs - first.cpuMs) / 1000 / elapsedS
    const running = samples.map((s) => s.running)
    const meanRunning = running.reduce((a, b) => a + b, 0) / running.length
    const peakRss = Math.max(...samples.map((s) => s.rss))
    const errors = received.reduce((sum, r) => sum + r.errors, 0)
    const perSecond = samples
      .slice(1)
      .map((s, i) => (s.tokens - samples[i]!.tokens) / ((s.atMs - samples[i]!.atMs) / 1000))

    const rows: Array<[string, string]> = [
      ['concurrent streams (target)', String(streams)],
      ['running requests (mean, min)', `${meanRunning.toFixed(0)}, ${Math.min(...running)}`],
      ['streamed tokens/s (emulator counter)', (tokens / elapsedS).toFixed(0)],
      ['  per-second min / max', `${Math.min(...perSecond).toFixed(0)} / ${Math.max(...perSecond).toFixed(0)}`],
      ['SSE events/s received by clients', ((last.events - first.events) / elapsedS).toFixed(0)],
      ['modelled tokens/s (streams / step time)', ((streams / modelledStepMs) * 1000).toFixed(0)],
      ['emulator CPU (cores)', cpu.toFixed(2)],
      ['emulator RSS idle / loaded (MiB)', `${(idleRss / 2 ** 20).toFixed(0)} / ${(peakRss / 2 ** 20).toFixed(0)}`],
      ['memory per running request, RSS (KiB)', ((peakRss - idleRss) / Math.max(1, meanRunning) / 1024).toFixed(1)],
      [
        'memory per running request, heap after GC (KiB)',
        ((loadedHeap - idleHeap) / Math.max(1, runningAtHeap) / 1024).toFixed(1),
      ],
      ['client errors', String(errors)],
      ['window (s)', elapsedS.toFixed(1)],
    ]
    const width = Math.max(...rows.map(([k]) => k.length))
    console.log(
      `kvgate sim throughput: ${streams} streams, ${promptTokens} prompt + ${outputTokens} output tokens, step ${stepFixedMs} ms + ${runningSeqMs} ms/seq, speed 1`,
    )
    for (const [key, value] of rows) console.log(`${key.padEnd(width)}  ${value}`)
    for (const child of children.slice(1)) child.send('stop')
  } finally {
    await sleep(200)
    cleanup()
  }
}

if (args.role === 'client') {
  await runClient(args.url, Number(args.streams), Number(args['prompt-tokens']), Number(args['output-tokens']))
} else {
  await main()
  process.exit(0)
}
