import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

/**
 * A tiny stand-in for vLLM on loopback: a /metrics page whose KV usage a test sets, and completion routes whose
 * behaviour a test scripts (stream, fail before or after the stream starts, hang). Records what it received.
 */
export interface FakeVllm {
  url: string
  received: ReceivedRequest[]
  /** KV usage ratio the /metrics page reports (capacity is 256 blocks × 16 = 4096 tokens). */
  usage: number
  /** The status `GET /health` answers (vLLM: 200, or 503 once its engine died). */
  healthStatus: number
  handler: (req: ReceivedRequest, res: ServerResponse) => void
  /** Upstream requests whose client (kvgate) went away before the response ended. */
  closedEarly: number
  close(): Promise<void>
}

export function metricsPage(usage: number): string {
  const labels = 'engine="0",model_name="fake"'
  return [
    `vllm:num_requests_running{${labels}} 0.0`,
    `vllm:num_requests_waiting{${labels}} 0.0`,
    `vllm:kv_cache_usage_perc{${labels}} ${usage}`,
    'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="256"} 1.0',
    `vllm:prompt_tokens_total{${labels}} 0.0`,
    `vllm:generation_tokens_total{${labels}} 0.0`,
    '',
  ].join('\n')
}

/** A chat stream of `tokens` one-word chunks, then (if asked) the usage chunk, then [DONE]. */
export function chatStream(res: ServerResponse, tokens: number, withUsage: boolean, promptTokens = 3): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'fake' }
  res.write(
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`,
  )
  for (let i = 0; i < tokens; i++) {
    const finish = i === tokens - 1 ? 'length' : null
    res.write(
      `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: ' word' }, finish_reason: finish }] })}\n\n`,
    )
  }
  if (withUsage) {
    const usage = { prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens }
    res.write(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`)
  }
  res.end('data: [DONE]\n\n')
}

export async function startFakeVllm(): Promise<FakeVllm> {
  let server: Server | undefined
  const fake: FakeVllm = {
    url: '',
    received: [],
    usage: 0,
    healthStatus: 200,
    closedEarly: 0,
    handler: (req, res) => {
      const body = JSON.parse(req.body) as { stream?: boolean; stream_options?: { include_usage?: boolean } }
      if (body.stream) return chatStream(res, 4, body.stream_options?.include_usage === true)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          id: 'chatcmpl-1',
          object: 'chat.completion',
          choices: [],
          usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
        }),
      )
    },
    close: () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  }
  server = createServer((req, res) => {
    if (req.url === '/health' && req.method === 'GET') {
      res.writeHead(fake.healthStatus).end()
      return
    }
    // kvgate's start-up look at the model list (it marks it): answered as vLLM would, not recorded.
    if (req.url === '/v1/models' && req.headers['x-kvgate-probe'] !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] }))
      return
    }
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(metricsPage(fake.usage))
      return
    }
    // The gateway reads each backend's models (its pool): `fake`, and the emulator's name the security tests'
    // bodies carry, with a context far beyond what these tests send, so the context check never stands in for
    // the checks they are about. Not recorded.
    if (req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' })
      const card = (id: string) => ({ id, object: 'model', max_model_len: 131072 })
      res.end(JSON.stringify({ object: 'list', data: [card('fake'), card('kvgate-sim')] }))
      return
    }
    let body = ''
    req.on('data', (chunk: Buffer) => (body += chunk.toString()))
    req.on('end', () => {
      const received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }
      fake.received.push(received)
      res.on('close', () => {
        if (!res.writableFinished) fake.closedEarly++
      })
      fake.handler(received, res)
    })
  })
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const original = fake.close
  fake.close = async () => {
    server?.closeAllConnections()
    await original()
  }
  return fake
}
