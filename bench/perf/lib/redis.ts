import { type ChildProcess, spawn } from 'node:child_process'
import { freePort } from './processes.js'

/** A redis-server on a free loopback port without persistence, that a benchmark can stop and start again. */
export interface RedisProcess {
  readonly url: string
  readonly pid: () => number
  stop(): Promise<void>
  start(): Promise<void>
}

export async function startRedisServer(binary = 'redis-server'): Promise<RedisProcess> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const proc = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    child = proc
    await new Promise<void>((resolve, reject) => {
      let output = ''
      proc.once('error', reject)
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
      proc.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      })
    })
  }
  await start()
  // A benchmark that fails half-way must not leave a server behind.
  process.once('exit', () => child?.kill('SIGKILL'))
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid ?? 0,
    start,
    async stop() {
      const proc = child
      child = undefined
      if (proc === undefined || proc.exitCode !== null) return
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      proc.kill('SIGKILL')
      await exited
    },
  }
}
