import cluster, { type Worker } from 'node:cluster'

const RESTART_DELAY_MS = 1_000 // a worker that died is replaced after 1 s (not in a tight crash loop)
const MAX_RESTARTS_PER_MINUTE = 10 // beyond this the whole group stops: something is wrong with every worker

export interface WorkerGroupOptions {
  readonly count: number
  /** Environment for each worker, on top of the primary's (the worker's index is added as KVGATE_WORKER). */
  readonly env?: Readonly<Record<string, string>>
  readonly log: (message: string) => void
}

/** Whether this process is a worker of `kvgate serve --workers N` (then it runs one gateway). */
export function isGatewayWorker(): boolean {
  return cluster.isWorker
}

/**
 * `kvgate serve --workers N`: the primary forks N workers with the same command line (Node's cluster module;
 * they share the listening socket, and the primary hands connections out in turn), and does nothing else:
 * each worker is a whole gateway, and the shared state store (Redis) makes them one. SIGTERM and SIGINT are
 * passed on, so each worker drains its streams as a single process would; SIGHUP too (each reloads its
 * config). A worker that dies is replaced; the primary exits when every worker has, with the first non-zero
 * exit code.
 */
export function runWorkerGroup(options: WorkerGroupOptions): void {
  let stopping = false
  let exitCode = 0
  const restarts: number[] = []
  const fork = (index: number): Worker => {
    const worker = cluster.fork({ ...options.env, KVGATE_WORKER: String(index) })
    worker.on('exit', (code, signal) => {
      if (stopping) {
        if (code !== 0 && code !== null) exitCode ||= code
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode)
        return
      }
      const now = Date.now()
      restarts.push(now)
      while ((restarts[0] ?? now) < now - 60_000) restarts.shift()
      if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
        options.log(`kvgate serve: workers keep dying (${restarts.length} in a minute); stopping`)
        stop('SIGTERM', 1)
        return
      }
      options.log(`kvgate serve: worker ${index} exited (${signal ?? code}); starting another`)
      setTimeout(() => {
        if (!stopping) fork(index)
      }, RESTART_DELAY_MS)
    })
    return worker
  }
  const stop = (signal: NodeJS.Signals, code = 0): void => {
    exitCode ||= code
    if (stopping) {
      // A second signal: the workers' own second-signal rule applies (exit at once).
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal)
      return
    }
    stopping = true
    const workers = Object.values(cluster.workers ?? {})
    if (workers.length === 0) process.exit(exitCode)
    for (const worker of workers) worker?.process.kill(signal)
  }
  for (let i = 0; i < options.count; i++) fork(i)
  options.log(`kvgate serve: ${options.count} workers sharing one listening socket and the shared state store`)
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP')
  })
}
