import { createServer } from 'node:http'
import { Agent, request } from 'undici'
import { serveUntilDisconnected } from './processes.js'

/**
 * The least a Node proxy can do: node:http in, undici out (keep-alive Agent, as kvgate's), the body passed
 * through without parsing, SSE relayed chunk by chunk. No Fastify, no admission, no logs, no metrics. Its row
 * separates what Node's HTTP stack costs from what kvgate adds on top.
 */
const { upstream } = JSON.parse(process.argv[2] ?? '{}') as { upstream: string }

serveUntilDisconnected(async () => {
  const agent = new Agent({ keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 })
  const server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (part: Buffer) => parts.push(part))
    req.on('end', () => {
      request(`${upstream}${req.url ?? '/'}`, {
        method: req.method === 'POST' ? 'POST' : 'GET',
        dispatcher: agent,
        headers: { 'content-type': 'application/json' },
        body: parts.length > 0 ? Buffer.concat(parts) : null,
      }).then(
        async (answer) => {
          const type = String(answer.headers['content-type'] ?? 'application/json')
          res.writeHead(answer.statusCode, { 'content-type': type })
          for await (const chunk of answer.body) {
            if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
          }
          res.end()
        },
        () => res.writeHead(502).end(),
      )
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  return {
    urls: [`http://127.0.0.1:${port}`],
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await agent.close()
    },
  }
})
