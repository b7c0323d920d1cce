import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'

/** A load balancer without a gate in front of several backends: what `direct` means for a fleet. */
export interface SpreadProxy {
  readonly url: string
  close(): Promise<void>
}

// Hop-by-hop headers (RFC 9110 §7.6.1) stay on their own connection.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'te',
  'trailer',
])

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || name === 'host') continue
    out[name] = value
  }
  return out
}

/**
 * `kvgate bench compare --backends N`'s `direct` setup: each request goes to the next backend in turn, as a
 * Kubernetes Service or a plain round-robin balancer in front of vLLM replicas spreads them, knowing nothing of
 * KV or prefixes; bodies and streams are piped through unbuffered. Loopback only: a bench tool, not a gateway.
 */
export async function startSpreadProxy(backendUrls: readonly string[]): Promise<SpreadProxy> {
  if (backendUrls.length === 0) throw new RangeError('a spread proxy needs at least one backend')
  const agent = new Agent({ keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0, connections: 256 })
  let next = 0
  const server: Server = createServer((req, res) => {
    const target = backendUrls[next++ % backendUrls.length] as string
    const abort = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) abort.abort()
    })
    request(`${target}${req.url ?? '/'}`, {
      method: (req.method ?? 'GET') as 'GET',
      headers: forwardable(req.headers),
      body: req.method === 'GET' || req.method === 'HEAD' ? null : req,
      dispatcher: agent,
      signal: abort.signal,
    }).then(
      (upstream) => {
        const headers: Record<string, string | string[]> = {}
        for (const [name, value] of Object.entries(upstream.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value
        }
        res.writeHead(upstream.statusCode, headers)
        upstream.body.on('error', () => res.destroy())
        upstream.body.pipe(res)
      },
      (err: Error) => {
        if (res.headersSent) {
          res.destroy()
          return
        }
        res.writeHead(502, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            error: { message: err.message, type: 'server_error', param: null, code: 'upstream_error' },
          }),
        )
      },
    )
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await agent.close()
    },
  }
}
