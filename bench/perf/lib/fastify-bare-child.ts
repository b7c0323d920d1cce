import Fastify from 'fastify'
import { Agent, request } from 'undici'
import { serveUntilDisconnected } from './processes.js'

/**
 * `node-bare` plus Fastify: Fastify in (routing, JSON body parsing, reply), undici out, nothing else — no
 * identity, admission, ledger, policy, predictor, metrics or log line. Between `node-bare` and kvgate, its
 * row separates what Fastify costs from what kvgate's own logic costs.
 */
const { upstream } = JSON.parse(process.argv[2] ?? '{}') as { upstream: string }

serveUntilDisconnected(async () => {
  const agent = new Agent({ keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 })
  const app = Fastify({ logger: false })
  app.post('/v1/completions', async (req, reply) => {
    const answer = await request(`${upstream}/v1/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(req.body),
    })
    const text = await answer.body.text()
    return reply
      .code(answer.statusCode)
      .type(String(answer.headers['content-type'] ?? 'application/json'))
      .send(text)
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    urls: [url],
    close: async () => {
      await app.close()
      await agent.close()
    },
  }
})
