import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSystemClock } from '../../src/core/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { Agent } from 'undici'
import { runTrace, summarize } from '../../src/bench/index.js'
import { sendChat } from '../../src/bench/client.js'
import type { TraceRequest } from '../../src/bench/index.js'

/**
 * A scripted OpenAI-compatible server: the user header picks the behaviour, so one replay exercises every
 * outcome the client must tell apart.
 */
const attempts = new Map<string, number>()
const seenBodies: Record<string, unknown>[] = []
const chunk = (content: string, extra = '') =>
  `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"logprobs":null,"finish_reason":null}]${extra}}\n\n`

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/v1/models') {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'scripted' }] }))
    return
  }
  let body = ''
  req.on('data', (d: Buffer) => (body += d.toString()))
  req.on('end', () => {
    seenBodies.push(JSON.parse(body) as Record<string, unknown>)
    const user = String(req.headers['x-user-id'])
    const n = (attempts.get(user) ?? 0) + 1
    attempts.set(user, n)
    const reject = () => {
      res.writeHead(429, {
        'content-type': 'application/json',
        'x-kvgate-reject-reason': 'queue_deadline_exceeded',
        'retry-after': '1',
        'retry-after-ms': '30',
      })
      res.end(
        JSON.stringify({
          error: {
            message: 'try again in 0.03s',
            type: 'rate_limit_exceeded',
            param: null,
            code: 'queue_deadline_exceeded',
          },
        }),
      )
    }
    if (user === 'always-429' || (user === '429-once' && n === 1)) return reject()
    if (user === 'server-error') {
      res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: 'boom', type: 'InternalServerError', param: null, code: 500 } }))
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    // Role chunk with empty content first: TTFT must wait for the first non-empty content.
    res.write(
      'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n',
    )
    if (user === 'stream-error') {
      res.write(chunk(' a'))
      res.write(
        'data: {"error":{"message":"engine died","type":"InternalServerError","param":null,"code":500}}\n\ndata: [DONE]\n\n',
      )
      res.end()
      return
    }
    if (user === 'cut') {
      res.write(chunk(' a'))
      res.destroy()
      return
    }
    setTimeout(() => {
      res.write(chunk(' hello', ',"usage":null'))
      res.write(chunk(' big'))
      res.write(chunk(' world'))
      res.write(
        'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"total_tokens":13,"completion_tokens":3}}\n\n',
      )
      res.end('data: [DONE]\n\n')
    }, 20)
  })
}

let server: Server
let url: string
beforeAll(async () => {
  server = createServer(handle)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

const counter = createWordPieceTokenCounter()
const trace = (users: string[]): TraceRequest[] =>
  users.map((user, i) => ({ arrivalMs: i, user, inputTokens: 10, outputTokens: 3 }))

describe('client outcomes', () => {
  it('measures a stream as vLLM does and sends exact-length requests', async () => {
    seenBodies.length = 0
    const run = await runTrace(trace(['ok']), { baseUrl: url, counter, clock: createSystemClock(), seed: 1 })
    const [r] = run.records
    expect(run.model).toBe('scripted')
    expect(r).toMatchObject({
      outcome: 'completed',
      status: 200,
      outputNumTokens: 3,
      outputNumChunks: 2,
      inputNumTokens: 10,
      inputNumTurns: 1,
      attempts: 1,
    })
    expect(r?.ttftMs).toBeGreaterThanOrEqual(15) // the empty role chunk did not count
    expect(r?.tpotMs).toBeCloseTo(((r?.latencyMs as number) - (r?.ttftMs as number)) / 2, 6)
    expect(seenBodies[0]).toMatchObject({
      model: 'scripted',
      max_tokens: 3,
      min_tokens: 3,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    })
  })

  it('gives every request exactly one outcome: completed, rejected (with reason) or failed', async () => {
    attempts.clear()
    const users = ['ok', 'always-429', '429-once', 'server-error', 'stream-error', 'cut']
    const run = await runTrace(trace(users), { baseUrl: url, counter, clock: createSystemClock(), seed: 1 })
    const by = Object.fromEntries(run.records.map((r) => [r.user, r]))
    expect(run.records).toHaveLength(users.length)
    expect(by['always-429']).toMatchObject({
      outcome: 'rejected',
      status: 429,
      rejectReason: 'queue_deadline_exceeded',
      attempts: 1,
    })
    expect(by['429-once']).toMatchObject({ outcome: 'rejected', attempts: 1 }) // not retried without --retry-429
    expect(by['server-error']).toMatchObject({ outcome: 'failed', status: 500, error: 'boom' })
    expect(by['stream-error']).toMatchObject({ outcome: 'failed', status: 200, error: 'engine died' })
    expect(by['cut']?.outcome).toBe('failed')
    const summary = summarize(run)
    expect(summary).toMatchObject({ requests: 6, completed: 1, rejected_429: 2, failed: 3, responses_429: 2 })
    expect(summary.rate_429).toBeCloseTo(2 / 6, 10)
    expect(summary.rejections_by_reason).toEqual({ queue_deadline_exceeded: 2 })
    expect(summary.table.ttft_ms['count']).toBe(1) // latency figures only over completed requests
  })

  it('retries a 429 after retry-after-ms with --retry-429, counting every 429', async () => {
    attempts.clear()
    const run = await runTrace(trace(['429-once', 'always-429']), {
      baseUrl: url,
      counter,
      clock: createSystemClock(),
      seed: 1,
      retry429: true,
      maxRetries: 2,
    })
    const by = Object.fromEntries(run.records.map((r) => [r.user, r]))
    expect(by['429-once']).toMatchObject({ outcome: 'completed', attempts: 2 })
    expect(by['429-once']?.rejectionsMs).toHaveLength(1)
    // TTFT of a retried request counts from its first attempt: at least the 30 ms retry-after.
    expect(by['429-once']?.ttftMs).toBeGreaterThanOrEqual(30)
    expect(by['always-429']).toMatchObject({ outcome: 'rejected', attempts: 3 })
    expect(summarize(run)).toMatchObject({ rejected_429: 1, responses_429: 4 })
  })
})

describe('client stream decoding', () => {
  it('keeps a multi-byte character whole when the network splits it across chunks', async () => {
    const event = Buffer.from(chunk(' h€llo 🙂'))
    const euro = event.indexOf(0xe2) // '€' is E2 82 AC: the first read ends after E2
    const split = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.socket?.setNoDelay(true)
      res.write(event.subarray(0, euro + 1), () => {
        // The rest a moment later, so the client reads the two halves separately.
        setTimeout(() => {
          res.write(event.subarray(euro + 1))
          res.end('data: [DONE]\n\n')
        }, 30)
      })
    })
    await new Promise<void>((resolve) => split.listen(0, '127.0.0.1', resolve))
    const dispatcher = new Agent()
    try {
      const outcome = await sendChat({
        baseUrl: `http://127.0.0.1:${(split.address() as AddressInfo).port}`,
        model: 'm',
        messages: [{ role: 'user', content: 'hi' }],
        outputTokens: 2,
        user: 'u',
        userHeader: 'x-user-id',
        dispatcher,
        clock: createSystemClock(),
        counter,
        timeoutMs: 5_000,
      })
      expect(outcome).toMatchObject({ kind: 'completed', text: ' h€llo 🙂' })
    } finally {
      await dispatcher.close()
      split.closeAllConnections()
      await new Promise((resolve) => split.close(resolve))
    }
  })
})
