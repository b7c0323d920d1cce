import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { freePort } from '../support/net.js'
import { until } from '../support/poll.js'
import { redisAvailable, startRedis, type RedisServer } from '../support/redis.js'
import { streamOne } from './replicas.js'

const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

function serve(args: readonly string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  return { child, output: () => output }
}

const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', resolve))

describe('kvgate serve --workers', () => {
  it('refuses N > 1 without a shared store', async () => {
    const { child, output } = serve(['--workers', '2', '-b', 'http://127.0.0.1:1'], { KVGATE_STATE_STORE: 'memory' })
    expect(await exited(child)).toBe(1)
    expect(output()).toContain('--workers N needs state.store: redis')
  })

  describe.runIf(redisAvailable)('with redis', () => {
    let server: RedisServer
    let sim: SimHandle
    beforeAll(async () => {
      server = await startRedis()
      sim = await startSim({ numGpuBlocks: 256, speed: 20, logger: false })
    })
    afterAll(async () => {
      await sim?.close()
      await server?.close()
    })

    it('runs N gateways on one port that share the state store, and stops them all on SIGTERM', async () => {
      const port = await freePort()
      const { child, output } = serve(
        ['--workers', '2', '--port', String(port), '--host', '127.0.0.1', '-b', sim.url],
        {
          KVGATE_STATE_STORE: 'redis',
          KVGATE_STATE_URL: server.url,
          KVGATE_LOG_LEVEL: 'warn',
        },
      )
      try {
        const url = `http://127.0.0.1:${port}`
        // Both workers hold a lease in the store: every worker's /health says 2 replicas.
        await until(
          async () => {
            const health = (await (await request(`${url}/health`)).body.json()) as { state?: { replicas: number } }
            return health.state?.replicas === 2 ? true : undefined
          },
          { timeoutMs: 30_000, tolerateErrors: true, what: `two workers (${output()})` },
        )
        const results = await Promise.all(Array.from({ length: 12 }, () => streamOne(url, { outputTokens: 20 })))
        expect(results.every((r) => r.status === 200 && r.done)).toBe(true)
        const redis = server.client()
        expect(await redis.scard('kvgate:replicas')).toBe(2)
        await until(async () => (Object.keys(await redis.hgetall('kvgate:o:vllm-0')).length === 0 ? true : undefined))
      } finally {
        child.kill('SIGTERM')
      }
      expect(await exited(child)).toBe(0)
    }, 60_000)
  })
})
