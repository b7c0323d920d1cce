import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { Redis } from 'ioredis'
import { freePort } from './net.js'
import { until } from './poll.js'

/**
 * A real `redis-server` (Debian's package) for the shared-state tests, on a free loopback port, without
 * persistence, started and stopped by the test itself. Where the binary is absent the tests skip with a
 * message, except in CI, where `.ci/run` installs it and its absence must fail.
 */
export const REDIS_BINARY = ((): string | undefined => {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  const path = found.stdout.trim()
  return found.status === 0 && path.length > 0 ? path : undefined
})()

const inCi = Boolean(process.env['CI'])
if (REDIS_BINARY === undefined && !inCi) {
  console.warn(
    '[test/state] skipping the redis checks: redis-server is not on PATH (apt-get install redis-server; CI installs it)',
  )
}

/** Whether the redis tests run: wherever the binary is, and always in CI. */
export const redisAvailable = REDIS_BINARY !== undefined || inCi

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Stop it (SIGKILL: no goodbye to clients, as a crash or a partition looks to them). */
  stop(): Promise<void>
  /** Start it again on the same port, empty (nothing persisted), as a restarted Redis comes back. */
  start(): Promise<void>
  /** A plain client for assertions; closed by `close()`. */
  client(): Redis
  close(): Promise<void>
}

export async function startRedis(): Promise<RedisServer> {
  if (REDIS_BINARY === undefined)
    throw new Error('redis-server is not on PATH although CI is set: .ci/run must install it')
  const binary = REDIS_BINARY
  const port = await freePort()
  let child: ChildProcess | undefined
  const clients: Redis[] = []

  const start = async (): Promise<void> => {
    const proc = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child = proc
    let output = ''
    proc.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    proc.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    await until(
      () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited: ${output}`)
        return output.includes('Ready to accept connections') ? true : undefined
      },
      { timeoutMs: 10_000, what: `redis-server on port ${port}` },
    )
  }
  const stop = async (): Promise<void> => {
    const proc = child
    child = undefined
    if (proc === undefined || proc.exitCode !== null) return
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    proc.kill('SIGKILL')
    await exited
  }
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    client() {
      const client = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: false, maxRetriesPerRequest: 1 })
      client.on('error', () => undefined)
      clients.push(client)
      return client
    },
    async close() {
      for (const client of clients) client.disconnect()
      await stop()
    },
  }
}
