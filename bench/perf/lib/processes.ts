import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

/**
 * The servers under test each run in their own process, so that the load client does not share their event
 * loop and their CPU can be read per process from /proc.
 */

/** Linux's USER_HZ: /proc reports CPU time in these ticks (100 on every mainstream kernel build). */
const CLOCK_TICKS_PER_SECOND = 100
const READY_TIMEOUT_MS = 60_000 // 60 seconds: tsx compiles the entry on first start on a loaded machine

/** User + system CPU time a process has used so far, in milliseconds (10 ms resolution). */
export function cpuTimeMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name in parentheses may contain spaces; the fields after it are positional.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[11]) + Number(fields[12]) // utime, stime (fields 14 and 15 of proc(5))
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND
}

/** CPU time of several processes between two instants. */
export function cpuMeter(pids: Readonly<Record<string, number>>): { start(): void; stop(): Record<string, number> } {
  let before: Record<string, number> = {}
  return {
    start() {
      before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuTimeMs(pid)]))
    },
    stop() {
      return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuTimeMs(pid) - (before[name] ?? 0)]))
    },
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Polls `url` until it answers at all (any status), or the child exits, or the deadline passes. */
export async function waitForHttp(url: string, child?: ChildProcess, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child && child.exitCode !== null)
      throw new Error(`process exited with ${child.exitCode} before ${url} answered`)
    try {
      const response = await request(url)
      await response.body.dump()
      return
    } catch (cause) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`, { cause })
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

export interface ServerProcess {
  readonly url: string
  /** Every URL the child serves, when it runs several servers (the first is `url`). */
  readonly urls: readonly string[]
  readonly pid: number
  close(): Promise<void>
}

/**
 * `.js` when this file runs compiled by `npm run bench:perf:build` (the figures in docs/benchmarks.md), `.ts`
 * under tsx. Figures must come from the compiled build: tsx compiles with esbuild's `keepNames`, which wraps
 * every function created at run time in a `__name()` call (`Object.defineProperty`), and closures created in
 * hot paths then cost several times what they cost in `dist/`.
 */
const SOURCE_EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js'

/**
 * Forks one of the `*-child` entries next to this file under tsx; the child answers `{ url }` on IPC when
 * it listens and shuts down when the IPC channel closes.
 */
export async function forkServer(
  entry: string,
  options: unknown,
  execArgv: readonly string[] = [],
): Promise<ServerProcess> {
  // An absolute path runs an entry from another build (an A/B copy, see lib/candidate-build.ts).
  const path = entry.startsWith('/')
    ? `${entry}${SOURCE_EXTENSION}`
    : fileURLToPath(new URL(`${entry}${SOURCE_EXTENSION}`, import.meta.url))
  const child = fork(path, [JSON.stringify(options)], {
    execArgv: [...(SOURCE_EXTENSION === '.ts' ? ['--import', 'tsx'] : []), ...execArgv],
    // The servers' own logs would cost the load client CPU to read; they go to /dev/null, stderr stays visible.
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  const urls = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${entry} did not start within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    )
    child.once('message', (message: { urls?: string[]; error?: string }) => {
      clearTimeout(timer)
      if (message.urls) resolve(message.urls)
      else reject(new Error(`${entry} failed: ${message.error ?? 'unknown error'}`))
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${entry} exited with ${code} before listening`))
    })
  })
  return {
    url: urls[0] ?? '',
    urls,
    pid: child.pid ?? 0,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.disconnect()
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(killer)
    },
  }
}

/** The child's side of `forkServer`: report the URL, then close the server when the parent lets go. */
export function serveUntilDisconnected(
  start: () => Promise<{ urls: readonly string[]; close(): Promise<void> }>,
): void {
  start().then(
    (server) => {
      process.send?.({ urls: server.urls })
      process.once('disconnect', () => {
        void server.close().finally(() => process.exit(0))
      })
    },
    (error: unknown) => {
      process.send?.({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) })
      process.exit(1)
    },
  )
}

export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}
