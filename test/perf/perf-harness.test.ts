import { createServer, type Server } from 'node:http'
import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runClosedLoop } from '../../bench/perf/lib/load.js'
import { nginxConfig, startNginx } from '../../bench/perf/lib/nginx.js'
import { cpuTimeMs, median } from '../../bench/perf/lib/processes.js'
import { runStreams } from '../../bench/perf/lib/sse-load.js'

// Smoke tests of the perf harness: the clients count what a server sends and nginx proxies it. Speed is
// measured by the benchmarks in bench/perf, never asserted here.

const EVENTS_PER_STREAM = 5
const STREAM_TEXT = ['data: {"i":1}', 'data: {"i":22}', 'data: x', 'data: {"i":4444}', 'data: [DONE]']
  .map((event) => `${event}\n\n`)
  .join('')
let server: Server
let origin: string

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        // Written in 3-byte pieces, one event loop turn apart, so that events straddle reads as TCP may
        // deliver them, "\n" + "\n" included.
        let text = STREAM_TEXT
        const writeNext = (): void => {
          if (res.destroyed) return
          if (text.length <= 3) return void res.end(text)
          res.write(text.slice(0, 3))
          text = text.slice(3)
          setImmediate(writeNext)
        }
        writeNext()
        return
      }
      res.writeHead(req.url === '/fail' ? 500 : 200, { 'content-type': 'application/json' }).end('{"ok":true}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  origin = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
})

describe('closed-loop client', () => {
  it('counts answered requests and reports latency percentiles', async () => {
    const result = await runClosedLoop({ origin, path: '/ok', body: {}, concurrency: 4, warmupMs: 20, durationMs: 200 })
    expect(result.requests).toBeGreaterThan(0)
    expect(result.errors).toBe(0)
    expect(result.p50Ms).toBeGreaterThan(0)
    expect(result.p99Ms).toBeGreaterThanOrEqual(result.p50Ms)
  })

  it('counts non-200 answers as errors, not as served requests', async () => {
    const result = await runClosedLoop({
      origin,
      path: '/fail',
      body: {},
      concurrency: 2,
      warmupMs: 0,
      durationMs: 100,
    })
    expect(result.requests).toBe(0)
    expect(result.errors).toBeGreaterThan(0)
  })
})

describe('SSE client', () => {
  it('counts whole events even when they straddle writes', async () => {
    let cpu = 0
    const result = await runStreams({
      origin,
      path: '/stream',
      body: { stream: true },
      streams: 2,
      warmupMs: 0,
      durationMs: 200,
      onWindow: (edge) => (cpu = edge === 'start' ? cpuTimeMs(process.pid) : cpuTimeMs(process.pid) - cpu),
    })
    expect(result.completedStreams).toBeGreaterThan(0)
    expect(result.errors).toBe(0)
    // Streams cut by the end of the window count only their received events: at most EVENTS_PER_STREAM each.
    expect(result.chunks).toBeGreaterThanOrEqual(result.completedStreams * EVENTS_PER_STREAM)
    expect(result.chunks).toBeLessThanOrEqual((result.completedStreams + 2) * EVENTS_PER_STREAM)
    expect(cpu).toBeGreaterThanOrEqual(0)
  })
})

describe('nginx launcher', () => {
  it('generates a plain unbuffered reverse proxy on loopback', () => {
    const config = nginxConfig({ port: 9999, upstream: new URL('http://127.0.0.1:8000'), prefix: '/tmp/x' })
    expect(config).toContain('listen 127.0.0.1:9999;')
    expect(config).toContain('server 127.0.0.1:8000;')
    expect(config).toContain('proxy_buffering off;')
  })

  it.skipIf(!existsSync('/usr/sbin/nginx'))('proxies to the upstream', async () => {
    const nginx = await startNginx({ upstream: origin })
    try {
      const result = await runClosedLoop({
        origin: nginx.url,
        path: '/ok',
        body: {},
        concurrency: 2,
        warmupMs: 0,
        durationMs: 100,
      })
      expect(result.requests).toBeGreaterThan(0)
      expect(result.errors).toBe(0)
    } finally {
      await nginx.close()
    }
  })
})

describe('median', () => {
  it('ignores non-finite values', () => {
    expect(median([3, Number.NaN, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([])).toBeNaN()
  })
})
