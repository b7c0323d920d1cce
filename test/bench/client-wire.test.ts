import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createManualClock, createScaledClock, createSystemClock } from '../../src/core/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'
import { runTrace } from '../../src/bench/index.js'
import type { TraceRequest } from '../../src/bench/index.js'
import type { RecordingServer } from './recording-server.js'
import { startRecordingServer } from './recording-server.js'

/**
 * What the bench puts on the wire, read back from a recording server. With `--client-max-tokens none` or a
 * number the answer's length travels out of band (`vllm_xargs.kvgate_sim_output_tokens`), the contract the
 * emulator reads; that the emulator then ends the answer there is the emulator's own test.
 */
const counter = createWordPieceTokenCounter()
let server: RecordingServer
beforeAll(async () => {
  server = await startRecordingServer()
})
afterAll(async () => {
  await server.close()
})
afterEach(() => {
  server.requests.length = 0
  delete server.respond
})

const trace = (n: number, outputTokens = 7): TraceRequest[] =>
  Array.from({ length: n }, (_, i) => ({ arrivalMs: 0, user: `u${i}`, inputTokens: 12, outputTokens }))
const base = { counter, clock: createSystemClock(), seed: 1 }

describe('what the bench sends', () => {
  it('--client-max-tokens exact: max_tokens = min_tokens = the length, ignore_eos, nothing out of band', async () => {
    await runTrace(trace(1), { ...base, baseUrl: server.url, clientMaxTokens: 'exact' })
    const body = server.requests[0]?.body
    expect(body).toMatchObject({ max_tokens: 7, min_tokens: 7, ignore_eos: true, stream: true })
    expect(body).not.toHaveProperty('vllm_xargs')
  })

  it('--client-max-tokens none: no max_tokens, min_tokens or ignore_eos; the length in vllm_xargs', async () => {
    const run = await runTrace(trace(1), { ...base, baseUrl: server.url, clientMaxTokens: 'none' })
    const body = server.requests[0]?.body as Record<string, unknown>
    expect(body['vllm_xargs']).toEqual({ kvgate_sim_output_tokens: 7 })
    for (const field of ['max_tokens', 'max_completion_tokens', 'min_tokens', 'ignore_eos'])
      expect(body).not.toHaveProperty(field)
    expect(run.records[0]).toMatchObject({ outcome: 'completed', requestedOutputTokens: 7, outputNumTokens: 7 })
  })

  it('--client-max-tokens 4096: a generous max_tokens, the true length out of band', async () => {
    await runTrace(trace(1), { ...base, baseUrl: server.url, clientMaxTokens: 4096 })
    const body = server.requests[0]?.body as Record<string, unknown>
    expect(body).toMatchObject({ max_tokens: 4096, vllm_xargs: { kvgate_sim_output_tokens: 7 } })
    expect(body).not.toHaveProperty('min_tokens')
    expect(body).not.toHaveProperty('ignore_eos')
  })

  it('--api-key and --header go on every request; the user header keeps its own value', async () => {
    await runTrace(trace(2), {
      ...base,
      baseUrl: server.url,
      headers: { authorization: 'Bearer sk-test', 'x-team': 'bench', 'x-user-id': 'overridden?' },
    })
    for (const r of server.requests) {
      expect(r.headers).toMatchObject({ authorization: 'Bearer sk-test', 'x-team': 'bench' })
      expect(r.headers['x-user-id']).toMatch(/^u\d$/)
    }
  })

  it('--max-concurrency holds a request due while that many are in flight (a p-queue slot)', async () => {
    server.respond = (request, res) => {
      // Answer late enough that the six requests, all due at 0, would overlap without the limit.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        const chunk = { choices: [{ index: 0, delta: { content: ' a' }, finish_reason: 'stop' }] }
        res.end(`data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`)
      }, 20)
      return request.body !== undefined
    }
    const run = await runTrace(trace(6), { ...base, baseUrl: server.url, maxConcurrency: 2 })
    expect(run.records.every((r) => r.outcome === 'completed')).toBe(true)
    expect(server.maxInFlight).toBeLessThanOrEqual(2)
  })
})

describe('--on-429', () => {
  const reject429 = (times: number) => {
    const seen = new Map<string, number>()
    server.respond = (request, res) => {
      const user = String(request.headers['x-user-id'])
      const n = (seen.get(user) ?? 0) + 1
      seen.set(user, n)
      if (n > times) return false
      // retry-after says 5 ms: vLLM's backoff must not listen.
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after-ms': '5', 'retry-after': '0' })
      res.end(
        JSON.stringify({ error: { message: 'busy', type: 'requests', param: null, code: 'rate_limit_exceeded' } }),
      )
      return true
    }
  }

  it("vllm-backoff: retries after 1 s, 2 s, … (±10%), ignoring retry-after, as vLLM's multi-turn client", async () => {
    reject429(2)
    // 100× clock: the 1 + 2 s of backoff take 30 ms of real time.
    const run = await runTrace(trace(1), {
      ...base,
      clock: createScaledClock(100),
      baseUrl: server.url,
      on429: 'vllm-backoff',
      maxRetries: 3,
    })
    const [r] = run.records
    expect(r).toMatchObject({ outcome: 'completed', attempts: 3 })
    const [first, second] = r?.rejectionsMs ?? []
    expect((second as number) - (first as number)).toBeGreaterThanOrEqual(900)
    expect(r?.ttftMs).toBeGreaterThanOrEqual(900 + 1800)
  })

  it('drop (the default) gives up at the first 429; retry-after waits as the server says', async () => {
    reject429(1)
    const dropped = await runTrace(trace(1), { ...base, baseUrl: server.url })
    expect(dropped.records[0]).toMatchObject({ outcome: 'rejected', attempts: 1 })
    reject429(1)
    const retried = await runTrace(trace(1), { ...base, baseUrl: server.url, on429: 'retry-after' })
    expect(retried.records[0]).toMatchObject({ outcome: 'completed', attempts: 2 })
  })
})

describe('timing', () => {
  it('stops the latency clock at data: [DONE], not when the connection ends', async () => {
    const clock = createManualClock()
    server.respond = (request, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const chunk = { choices: [{ index: 0, delta: { content: ' a' }, finish_reason: 'stop' }] }
      res.write(`data: ${JSON.stringify(chunk)}\n\ndata: [DONE]\n\n`)
      // The body ends later, and emulated time jumps before it does: latency must not include the jump.
      setTimeout(() => {
        clock.advance(10_000)
        res.end()
      }, 300)
      return request.body !== undefined
    }
    const run = await runTrace(trace(1), { ...base, clock, baseUrl: server.url })
    expect(run.records[0]?.outcome).toBe('completed')
    expect(run.records[0]?.latencyMs).toBeLessThan(10_000)
    expect(run.records[0]?.endMs).toBeGreaterThanOrEqual(10_000)
  })
})
