import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startSim, type SimHandle } from '../../src/sim/index.js'
import { postJson, sseData, until } from '../gateway/stack.js'
import {
  type OtlpReceiver,
  type ReceivedSpan,
  type RecordingForwarder,
  startOtlpReceiver,
  startRecordingForwarder,
} from './otlp-receiver.js'

// OTLP's enums: SpanKind (0 unspecified, 1 internal, 2 server, 3 client) and StatusCode (2 error).
const KIND_INTERNAL = 1
const KIND_SERVER = 2
const KIND_CLIENT = 3

const CLIENT_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN_ID = '00f067aa0ba902b7'
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-01`
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/

describe('OpenTelemetry traces of generating requests', () => {
  let sim: SimHandle | undefined
  let forwarder: RecordingForwarder | undefined
  let receiver: OtlpReceiver | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await forwarder?.close()
    await sim?.close()
    await receiver?.close()
    gateway = forwarder = sim = receiver = undefined
  })

  /** Gateway → recording forwarder → emulator, with `tracing` as given, pointed at an in-process receiver. */
  async function start(tracing: Record<string, unknown>): Promise<string> {
    sim = await startSim({ speed: 50, numGpuBlocks: 256, logger: false })
    forwarder = await startRecordingForwarder(sim.url)
    receiver = await startOtlpReceiver()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: forwarder.url, name: 'sim0' }],
        metricsPoll: { intervalMs: 20 },
        tracing: { endpoint: `${receiver.url}/v1/traces`, ...tracing },
      }),
      logger: false,
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable === true || undefined)
    return url
  }

  const chat = (extra: Record<string, unknown> = {}) => ({
    model: 'kvgate-sim',
    messages: [{ role: 'user', content: ' hello there' }],
    max_tokens: 6,
    ...extra,
  })

  const childrenOf = (spans: readonly ReceivedSpan[], parent: ReceivedSpan) =>
    spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId)

  it('exports one span per request, with queue and forward children, under the client traceparent', async () => {
    const url = await start({ enabled: true, serviceName: 'kvgate-test', headers: { 'x-otlp-key': 'k-123456789' } })
    const answer = await postJson(`${url}/v1/chat/completions`, chat(), { traceparent: CLIENT_TRACEPARENT })
    expect(answer.status).toBe(200)
    const body = JSON.parse(answer.text) as { usage: { prompt_tokens: number; completion_tokens: number } }
    const streamed = await postJson(`${url}/v1/chat/completions`, chat({ stream: true, max_tokens: 4 }))
    expect(sseData(streamed.text).at(-1)).toBe('[DONE]')

    // Closing flushes the batch: no waiting on the exporter's schedule.
    await gateway?.close()
    expect(gateway?.ledgerReservedTokens()).toBe(0)
    const spans = receiver?.spans ?? []
    expect(receiver?.requests.every((r) => r.contentType?.startsWith('application/json'))).toBe(true)
    expect(receiver?.requests[0]?.headers['x-otlp-key']).toBe('k-123456789')

    const roots = spans.filter((s) => s.kind === KIND_SERVER)
    expect(roots.map((s) => s.name)).toEqual(['chat kvgate-sim', 'chat kvgate-sim'])
    const [first, second] = roots as [ReceivedSpan, ReceivedSpan]
    // The client's trace is continued; the request without a traceparent starts its own.
    expect(first.traceId).toBe(CLIENT_TRACE_ID)
    expect(first.parentSpanId).toBe(CLIENT_SPAN_ID)
    expect(second.traceId).not.toBe(CLIENT_TRACE_ID)
    expect(second.parentSpanId).toBeUndefined()
    expect(first.resource['service.name']).toBe('kvgate-test')

    expect(first.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'kvgate-sim',
      'gen_ai.response.model': 'kvgate-sim',
      'gen_ai.request.max_tokens': 6,
      'gen_ai.usage.input_tokens': body.usage.prompt_tokens,
      'gen_ai.usage.output_tokens': body.usage.completion_tokens,
      'server.address': '127.0.0.1',
      'kvgate.user': 'anonymous',
      'kvgate.policy': 'fifo',
      'kvgate.outcome': 'completed',
      'kvgate.backend': 'sim0',
      'kvgate.stream': false,
      'http.response.status_code': 200,
    })
    expect(first.attributes['kvgate.predicted_tokens']).toBeGreaterThan(0)
    expect(second.attributes['kvgate.stream']).toBe(true)
    expect(second.attributes['gen_ai.usage.output_tokens']).toBe(4)

    for (const root of roots) {
      const children = childrenOf(spans, root)
      expect(children.map((s) => s.name).sort()).toEqual(['kvgate.forward', 'kvgate.queue'])
      expect(children.find((s) => s.name === 'kvgate.queue')?.kind).toBe(KIND_INTERNAL)
      const forward = children.find((s) => s.name === 'kvgate.forward')
      expect(forward?.kind).toBe(KIND_CLIENT)
      expect(forward?.attributes['http.response.status_code']).toBe(200)
      expect(forward?.attributes['url.full']).toBe(`${forwarder?.url}/v1/chat/completions`)
    }

    // The backend was called under kvgate's forward span, not the client's: its trace, the span's id.
    const posted = forwarder?.posts.filter((p) => p.path === '/v1/chat/completions') ?? []
    expect(posted).toHaveLength(2)
    const sent = TRACEPARENT.exec(String(posted[0]?.headers['traceparent']))
    const firstForward = childrenOf(spans, first).find((s) => s.name === 'kvgate.forward')
    expect(sent?.[1]).toBe(CLIENT_TRACE_ID)
    expect(sent?.[2]).toBe(firstForward?.spanId)
  })

  it('records a rejection on the request and queue spans', async () => {
    const url = await start({ enabled: true })
    const answer = await postJson(
      `${url}/v1/chat/completions`,
      chat({ messages: [{ role: 'user', content: ' the'.repeat(5000) }] }),
    )
    expect(answer.status).toBe(400)
    await gateway?.close()
    const root = receiver?.spans.find((s) => s.kind === KIND_SERVER)
    expect(root?.attributes['kvgate.outcome']).toBe('invalid_request')
    expect(root?.attributes['error.type']).toBe('request_exceeds_kv_capacity')
    expect(root?.attributes['gen_ai.usage.output_tokens']).toBeUndefined()
    const queue = childrenOf(receiver?.spans ?? [], root as ReceivedSpan)
    expect(queue.map((s) => [s.name, s.attributes['error.type'], s.status.code])).toEqual([
      ['kvgate.queue', 'request_exceeds_kv_capacity', 2],
    ])
  })

  it('is off by default: nothing exported, and the client traceparent reaches the backend unchanged', async () => {
    const url = await start({})
    const answer = await postJson(`${url}/v1/chat/completions`, chat(), { traceparent: CLIENT_TRACEPARENT })
    expect(answer.status).toBe(200)
    await gateway?.close()
    expect(receiver?.requests).toEqual([])
    const posted = forwarder?.posts.find((p) => p.path === '/v1/chat/completions')
    expect(posted?.headers['traceparent']).toBe(CLIENT_TRACEPARENT)
  })

  it('keeps an unsampled parent unsampled, and says so upstream', async () => {
    const url = await start({ enabled: true })
    const unsampled = `00-${CLIENT_TRACE_ID}-${CLIENT_SPAN_ID}-00`
    expect((await postJson(`${url}/v1/chat/completions`, chat(), { traceparent: unsampled })).status).toBe(200)
    await gateway?.close()
    expect(receiver?.spans).toEqual([])
    const sent = forwarder?.posts.find((p) => p.path === '/v1/chat/completions')?.headers['traceparent']
    expect(String(sent)).toMatch(new RegExp(`^00-${CLIENT_TRACE_ID}-[0-9a-f]{16}-00$`))
  })
})
