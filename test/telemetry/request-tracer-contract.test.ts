import { InMemorySpanExporter } from '@opentelemetry/sdk-trace'
import { describe, expect, it } from 'vitest'
import { createOtlpTracer, NOOP_REQUEST_TRACER, type RequestTracer } from '../../src/telemetry/index.js'

const details = {
  operation: 'chat',
  model: 'm',
  maxTokens: 8,
  user: 'alice',
  policy: 'fifo',
  promptTokens: 3,
  predictedTokens: 8,
  stream: false,
}

/** What the request path relies on, whichever tracer the gateway built. */
function contract(
  name: string,
  spansPerRequest: number,
  make: () => { tracer: RequestTracer; exported: () => number },
) {
  describe(`RequestTracer contract: ${name}`, () => {
    it('takes a whole request lifecycle, ending each span once whatever is called twice', async () => {
      const { tracer, exported } = make()
      const span = tracer.startRequest({ traceparent: 'not a traceparent' }, '/v1/chat/completions')
      span.describe(details)
      const queue = span.startQueue()
      queue.end()
      queue.end('queue_deadline_exceeded')
      const forward = span.startForward('b0', 'http://127.0.0.1:8000/v1/chat/completions')
      for (const [key, value] of Object.entries(forward.headers)) {
        expect(key).toMatch(/^(traceparent|tracestate)$/)
        expect(typeof value).toBe('string')
      }
      forward.responded(200)
      forward.end()
      forward.end('upstream_error')
      span.end({ outcome: 'completed', status: 200, inputTokens: 3, outputTokens: 8 })
      span.end({ outcome: 'upstream_error', status: 502 })
      await tracer.shutdown()
      await tracer.shutdown() // idempotent: a second close must not throw
      expect(exported()).toBe(spansPerRequest)
    })

    it('ends a request that failed before it was described or queued', async () => {
      const { tracer } = make()
      tracer.startRequest({}, '/v1/completions').end({ outcome: 'invalid_request', status: 400, errorCode: 'x' })
      await tracer.shutdown()
    })
  })
}

contract('no-op', 0, () => ({ tracer: NOOP_REQUEST_TRACER, exported: () => 0 }))
contract('OTLP', 3, () => {
  const exporter = new InMemorySpanExporter()
  const tracer = createOtlpTracer({
    endpoint: 'http://127.0.0.1:1/v1/traces',
    serviceName: 'contract',
    sampleRatio: 1,
    headers: {},
    exportTimeoutMs: 1_000,
    exporter,
  })
  let seen = 0
  // Shutdown resets the in-memory exporter, so count what it holds just before.
  const original = exporter.shutdown.bind(exporter)
  exporter.shutdown = () => {
    seen = exporter.getFinishedSpans().length
    return original()
  }
  return { tracer, exported: () => seen }
})

describe('the OTLP tracer', () => {
  it('keeps each gateway apart: two tracers, two exporters, no global provider', async () => {
    const exporters = [new InMemorySpanExporter(), new InMemorySpanExporter()]
    const tracers = exporters.map((exporter) =>
      createOtlpTracer({
        endpoint: 'http://127.0.0.1:1/v1/traces',
        serviceName: 's',
        sampleRatio: 1,
        headers: {},
        exportTimeoutMs: 1_000,
        exporter,
      }),
    )
    tracers[0]?.startRequest({}, '/a').end({ outcome: 'completed', status: 200 })
    tracers[1]?.startRequest({}, '/b').end({ outcome: 'completed', status: 200 })
    tracers[1]?.startRequest({}, '/b').end({ outcome: 'completed', status: 200 })
    const { trace } = await import('@opentelemetry/api')
    // The global API still hands out its no-op tracer: kvgate registered nothing.
    expect(trace.getTracer('probe').startSpan('probe').isRecording()).toBe(false)
    const counts = exporters.map(() => 0)
    exporters.forEach((exporter, i) => {
      const original = exporter.shutdown.bind(exporter)
      exporter.shutdown = () => {
        counts[i] = exporter.getFinishedSpans().length
        return original()
      }
    })
    await Promise.all(tracers.map((t) => t?.shutdown()))
    expect(counts).toEqual([1, 2])
  })

  it('samples none of the new traces at ratio 0, and still follows a sampled parent', async () => {
    const exporter = new InMemorySpanExporter()
    const tracer = createOtlpTracer({
      endpoint: 'http://127.0.0.1:1/v1/traces',
      serviceName: 's',
      sampleRatio: 0,
      headers: {},
      exportTimeoutMs: 1_000,
      exporter,
    })
    tracer.startRequest({}, '/new').end({ outcome: 'completed', status: 200 })
    tracer
      .startRequest({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, '/followed')
      .end({ outcome: 'completed', status: 200 })
    let names: string[] = []
    const original = exporter.shutdown.bind(exporter)
    exporter.shutdown = () => {
      names = exporter.getFinishedSpans().map((s) => s.name)
      return original()
    }
    await tracer.shutdown()
    expect(names).toEqual(['POST /followed'])
  })
})
