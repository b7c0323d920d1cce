import type { IncomingHttpHeaders } from 'node:http'
import {
  type Attributes,
  type Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace'
import type {
  ForwardSpan,
  RequestSpan,
  RequestSpanDetails,
  RequestSpanEnding,
  RequestTracer,
} from './request-tracer.js'

export interface OtlpTracerOptions {
  /** The OTLP/HTTP traces URL (`…/v1/traces`). */
  readonly endpoint: string
  readonly serviceName: string
  readonly sampleRatio: number
  readonly headers: Readonly<Record<string, string>>
  readonly exportTimeoutMs: number
  /** Where spans go instead of OTLP (a test's in-memory exporter). */
  readonly exporter?: SpanExporter
}

const TRACER_NAME = 'kvgate'
// The provider's own default is 30 s: a collector that is down must not hold the gateway's close that long.
const SHUTDOWN_FLUSH_TIMEOUT_MS = 5_000

/**
 * An OpenTelemetry `TracerProvider` of this gateway's own, never registered as the global one: several
 * gateways in one process (tests, an embedder) each keep their spans, and nothing else in the process gets
 * kvgate's exporter. Spans are batched and sent as OTLP/HTTP JSON; the W3C trace-context propagator reads the
 * client's `traceparent` and writes the upstream call's. Contexts are passed explicitly (no context manager):
 * a request's spans are parented by hand, so no async-hooks state is involved.
 */
export function createOtlpTracer(options: OtlpTracerOptions): RequestTracer {
  const exporter =
    options.exporter ??
    new OTLPTraceExporter({
      url: options.endpoint,
      headers: { ...options.headers },
      timeoutMillis: options.exportTimeoutMs,
    })
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor({ exporter, exportTimeoutMillis: options.exportTimeoutMs })],
  })
  const tracer = provider.getTracer(TRACER_NAME)
  const propagator = new W3CTraceContextPropagator()
  let closed: Promise<void> | undefined

  return {
    startRequest(headers: IncomingHttpHeaders, path: string): RequestSpan {
      const parent = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter)
      // Named `POST <path>` until the model is known, then `<operation> <model>` (GenAI conventions).
      const span = tracer.startSpan(
        `POST ${path}`,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'POST', 'url.path': path } },
        parent,
      )
      return new OtlpRequestSpan(span, propagator, tracer)
    },
    shutdown() {
      closed ??= provider
        .forceFlush({ timeoutMillis: SHUTDOWN_FLUSH_TIMEOUT_MS })
        .catch(() => {})
        .then(() => provider.shutdown())
        .catch(() => {})
      return closed
    },
  }
}

type SdkTracer = ReturnType<TracerProvider['getTracer']>

class OtlpRequestSpan implements RequestSpan {
  readonly #span: Span
  readonly #context: Context
  readonly #propagator: W3CTraceContextPropagator
  readonly #tracer: SdkTracer
  #ended = false

  constructor(span: Span, propagator: W3CTraceContextPropagator, tracer: SdkTracer) {
    this.#span = span
    this.#context = trace.setSpan(ROOT_CONTEXT, span)
    this.#propagator = propagator
    this.#tracer = tracer
  }

  describe(details: RequestSpanDetails): void {
    this.#span.updateName(`${details.operation} ${details.model}`)
    const attributes: Attributes = {
      'gen_ai.operation.name': details.operation,
      'gen_ai.provider.name': 'vllm',
      'gen_ai.request.model': details.model,
      'kvgate.user': details.user,
      'kvgate.policy': details.policy,
      'kvgate.prompt_tokens_estimated': details.promptTokens,
      'kvgate.predicted_tokens': details.predictedTokens,
      'kvgate.stream': details.stream,
    }
    if (details.maxTokens !== undefined) attributes['gen_ai.request.max_tokens'] = details.maxTokens
    this.#span.setAttributes(attributes)
  }

  startQueue() {
    const span = this.#tracer.startSpan('kvgate.queue', { kind: SpanKind.INTERNAL }, this.#context)
    return { end: once((errorCode?: string) => finish(span, errorCode)) }
  }

  startForward(backend: string, url: string): ForwardSpan {
    const target = new URL(url)
    const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80))
    const span = this.#tracer.startSpan(
      'kvgate.forward',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': 'POST',
          'url.full': `${target.origin}${target.pathname}`,
          'server.address': target.hostname,
          'server.port': port,
          'kvgate.backend': backend,
        },
      },
      this.#context,
    )
    this.#span.setAttributes({ 'server.address': target.hostname, 'server.port': port, 'kvgate.backend': backend })
    const headers: Record<string, string> = {}
    this.#propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, defaultTextMapSetter)
    return {
      headers,
      responded: (statusCode) => span.setAttribute('http.response.status_code', statusCode),
      end: once((errorCode?: string) => finish(span, errorCode)),
    }
  }

  end(ending: RequestSpanEnding): void {
    if (this.#ended) return
    this.#ended = true
    const attributes: Attributes = {
      'kvgate.outcome': ending.outcome,
      'http.response.status_code': ending.status,
    }
    if (ending.backend !== undefined) attributes['kvgate.backend'] = ending.backend
    if (ending.responseModel !== undefined) attributes['gen_ai.response.model'] = ending.responseModel
    if (ending.inputTokens !== undefined) attributes['gen_ai.usage.input_tokens'] = ending.inputTokens
    if (ending.outputTokens !== undefined) attributes['gen_ai.usage.output_tokens'] = ending.outputTokens
    if (ending.queueWaitMs !== undefined) attributes['kvgate.queue_wait_ms'] = ending.queueWaitMs
    if (ending.errorCode !== undefined) attributes['error.type'] = ending.errorCode
    this.#span.setAttributes(attributes)
    // A server span is in error for a 5xx only: a 4xx (a 429 included) is the client's answer, not kvgate's fault.
    if (ending.status >= 500) this.#span.setStatus({ code: SpanStatusCode.ERROR, message: ending.errorCode ?? '' })
    this.#span.end()
  }
}

function finish(span: Span, errorCode: string | undefined): void {
  if (errorCode !== undefined) {
    span.setAttribute('error.type', errorCode)
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode })
  }
  span.end()
}

function once<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let done = false
  return (...args) => {
    if (done) return
    done = true
    fn(...args)
  }
}
