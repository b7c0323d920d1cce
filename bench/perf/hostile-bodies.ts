/**
 * Hostile bodies: how long kvgate takes to answer a keyless 2 MB body nested a million deep, and what it
 * does to a legitimate client's latency next to it. A legitimate closed-loop client (small non-streaming
 * completions with a key) runs alone, then with `--attackers` connections each sending the hostile body
 * over and over, as fast as they get answers. Two configurations: `requireAuth` (the body is refused 401
 * before a byte of it is read) and keyless (refused 400 at the nesting limit while it arrives).
 *
 *   npm run bench:perf:build && cd node_modules/.cache/kvgate-perf/bench/perf && node hostile-bodies.js
 *     [--duration-ms 5000] [--attackers 2] [--concurrency 4] [--reps 3] [--baseline DIR]
 *
 * `--baseline DIR` also runs the kvgate of another compiled perf tree: the figures before a change, e.g.
 *   git archive <rev> | tar -x -C /tmp/before && ln -s $PWD/node_modules /tmp/before/ &&
 *   (cd /tmp/before && npx tsc -p bench/perf/tsconfig.json --outDir /tmp/before-build)
 *   node hostile-bodies.js --baseline /tmp/before-build
 */
import { connect } from 'node:net'
import { join } from 'node:path'
import { runClosedLoop } from './lib/load.js'
import { forkServer, median, type ServerProcess } from './lib/processes.js'
import { flag, loadNote, printTable } from './lib/table.js'
import { PERF_MODEL, startUpstream } from './lib/targets.js'
import { createJsonScanner } from '../../src/proxy/index.js'

const durationMs = flag('duration-ms', 5000)
const attackers = flag('attackers', 2)
const concurrency = flag('concurrency', 4)
const reps = flag('reps', 3)
const baseline = flag('baseline', '')

const KEY = 'sk-perf-0123456789'
const HOSTILE_BYTES = 2 * 1024 * 1024
const hostile = Buffer.alloc(HOSTILE_BYTES, '[')
const body = { model: PERF_MODEL, prompt: 'Say hello', max_tokens: 4, ignore_eos: true }

/** One hostile request on a connection of its own: ms from the first byte sent to the whole answer. */
function attackOnce(url: string): Promise<{ ms: number; status: number }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const started = performance.now()
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${HOSTILE_BYTES}\r\n\r\n`,
      )
      socket.write(hostile)
    })
    let text = ''
    const done = () => {
      socket.destroy()
      resolve({ ms: performance.now() - started, status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0) })
    }
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1')
      const split = text.indexOf('\r\n\r\n')
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? -1)
      if (split !== -1 && length >= 0 && text.length - split - 4 >= length) done()
    })
    socket.on('error', done)
    socket.on('close', done)
  })
}

/** Attackers in a loop until `stop`; every answer's time and status. */
async function attack(url: string, stop: { done: boolean }): Promise<{ ms: number; status: number }[]> {
  const answers: { ms: number; status: number }[] = []
  await Promise.all(
    Array.from({ length: attackers }, async () => {
      while (!stop.done) answers.push(await attackOnce(url))
    }),
  )
  return answers
}

const percentile = (values: readonly number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

interface Row {
  readonly setup: string
  readonly idleP50: number
  readonly idleP99: number
  readonly attackedP50: number
  readonly attackedP99: number
  readonly legitErrors: number
  readonly hostileP50: number
  readonly hostileMax: number
  readonly hostileStatus: string
  /** Hostile connections reset before the answer could be read (the server closed on the unread body). */
  readonly hostileResets: number
}

async function measure(setup: string, gateway: ServerProcess): Promise<Row> {
  const legit = { origin: gateway.url, path: '/v1/completions', body, concurrency, warmupMs: 500, durationMs }
  const headers = { authorization: `Bearer ${KEY}` }
  const idle = await runClosedLoop({ ...legit, headers })
  const stop = { done: false }
  const hostileRun = attack(gateway.url, stop)
  const attacked = await runClosedLoop({ ...legit, headers, warmupMs: 200 })
  stop.done = true
  const all = await hostileRun
  const answers = all.filter((a) => a.status > 0)
  const statuses = [...new Set(answers.map((a) => a.status))].sort().join(',')
  return {
    setup,
    idleP50: idle.p50Ms,
    idleP99: idle.p99Ms,
    attackedP50: attacked.p50Ms,
    attackedP99: attacked.p99Ms,
    legitErrors: attacked.errors,
    hostileP50: percentile(
      answers.map((a) => a.ms),
      50,
    ),
    hostileMax: Math.max(...answers.map((a) => a.ms)),
    hostileStatus: `${answers.length}× ${statuses}`,
    hostileResets: all.length - answers.length,
  }
}

// Timed first, in a process no HTTP run has warmed or filled yet.
const scanRows = scanCost()
const upstream = await startUpstream('sim')
const gatewayRoots: [string, string | undefined][] = [['kvgate', undefined]]
if (baseline !== '') gatewayRoots.push(['before', join(baseline, 'bench', 'perf', 'lib', 'gateway-child')])
const rows: Row[][] = []
try {
  for (let rep = 0; rep < reps; rep++) {
    const repRows: Row[] = []
    for (const [name, entry] of gatewayRoots) {
      for (const auth of [true, false]) {
        const identity = auth
          ? { requireAuth: true, apiKeys: [{ key: KEY, user: 'perf' }] }
          : { requireAuth: false, apiKeys: [] }
        const gateway = await forkServer(entry ?? './gateway-child', {
          upstreams: [upstream.url],
          policy: 'fifo',
          config: { identity, telemetry: { logLevel: 'warn' } },
        })
        try {
          repRows.push(await measure(`${name}${auth ? ' requireAuth' : ' no keys'}`, gateway))
        } finally {
          await gateway.close()
        }
      }
    }
    rows.push(repRows)
  }
} finally {
  await upstream.close()
}

const setups = rows[0]?.map((row) => row.setup) ?? []
printTable(
  `Hostile bodies: ${attackers} keyless connections sending a 2 MB body nested 10⁶ deep, next to a client with a key ` +
    `(${concurrency} concurrent small completions); median of ${reps} × ${durationMs} ms, ${loadNote()} at the end`,
  [
    'setup',
    'legit p50 idle (ms)',
    'legit p99 idle (ms)',
    'legit p50 attacked',
    'legit p99 attacked',
    'p99 ratio',
    'legit errors',
    'hostile answer p50 (ms)',
    'hostile answer max (ms)',
    'hostile answers',
    'hostile resets',
  ],
  setups.map((setup) => {
    const of = (pick: (row: Row) => number) =>
      median(rows.map((rep) => pick(rep.find((row) => row.setup === setup) as Row)))
    const last = rows.at(-1)?.find((row) => row.setup === setup)
    return [
      setup,
      of((r) => r.idleP50),
      of((r) => r.idleP99),
      of((r) => r.attackedP50),
      of((r) => r.attackedP99),
      of((r) => r.attackedP99 / r.idleP99),
      of((r) => r.legitErrors),
      of((r) => r.hostileP50),
      of((r) => r.hostileMax),
      last?.hostileStatus ?? '',
      last?.hostileResets ?? 0,
    ]
  }),
)

/**
 * What the bounded parser's scan costs a legitimate body, beside JSON.parse of the same bytes: a long chat
 * prompt of prose (a newline escape every line), one dense with escaped quotes, and a long prompt of token
 * ids, ~8 MiB each, scanned in the 64 KiB chunks a socket delivers.
 */
function scanCost(): (string | number)[][] {
  const line = 'The quick brown fox jumps over the lazy dog and the cache answers every prompt quickly.\n'
  const prose = JSON.stringify({ messages: [{ role: 'user', content: line.repeat(100_000) }] })
  const quoted = JSON.stringify({ messages: [{ role: 'user', content: 'the cache said "hi"\n'.repeat(400_000) }] })
  const ids = JSON.stringify({ prompt: Array.from({ length: 1_400_000 }, (_, i) => i % 50_000) })
  const CHUNK = 64 * 1024
  return [
    ['chat prompt (prose)', Buffer.from(prose)],
    ['chat prompt (dense quotes)', Buffer.from(quoted)],
    ['token ids', Buffer.from(ids)],
  ].map(([name, buffer]) => {
    const bytes = buffer as Buffer
    const time = (fn: () => void) => {
      const samples: number[] = []
      for (let i = 0; i < 7; i++) {
        const start = performance.now()
        fn()
        samples.push(performance.now() - start)
      }
      return median(samples)
    }
    const limits = { maxJsonDepth: 64, maxJsonElements: 10_000_000 }
    const scanMs = time(() => {
      const scanner = createJsonScanner(limits)
      for (let at = 0; at < bytes.length; at += CHUNK) scanner.push(bytes.subarray(at, at + CHUNK))
    })
    const parseMs = time(() => JSON.parse(bytes.toString('utf8')))
    const mb = bytes.length / 1024 / 1024
    return [name as string, mb, scanMs, scanMs / mb, parseMs, parseMs / mb]
  })
}
printTable(
  'The scan of a legitimate body while it arrives, next to JSON.parse of it (median of 7, one process, before the HTTP runs)',
  ['body', 'MiB', 'scan (ms)', 'scan ms/MiB', 'JSON.parse (ms)', 'parse ms/MiB'],
  scanRows,
)
