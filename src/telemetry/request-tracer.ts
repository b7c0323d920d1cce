import type { IncomingHttpHeaders } from 'node:http'

/**
 * Traces of generating requests, behind an interface so the request path never sees OpenTelemetry: the
 * gateway builds one tracer (OTLP, or the no-op one when `tracing.enabled` is false) and the proxy calls it
 * at the three moments a request has — it arrived, it waited for admission, it was forwarded — and when it
 * ended. Attribute names follow OpenTelemetry's GenAI semantic conventions; kvgate's own go under `kvgate.`.
 */
export interface RequestTracer {
  /** The span of one request; a child of the client's `traceparent` when it sent one. */
  startRequest(headers: IncomingHttpHeaders, path: string): RequestSpan
  /** Export what is buffered, then stop (the gateway's close waits for it). */
  shutdown(): Promise<void>
}

/** What is known of a request once its body is read and its user identified. */
export interface RequestSpanDetails {
  /** GenAI `gen_ai.operation.name`: `chat`, `text_completion`. */
  readonly operation: string
  readonly model: string
  readonly maxTokens: number | undefined
  readonly user: string
  readonly policy: string
  readonly promptTokens: number
  readonly predictedTokens: number
  readonly stream: boolean
}

/** How the request ended, with what it used. */
export interface RequestSpanEnding {
  readonly outcome: string
  readonly status: number
  readonly errorCode?: string | undefined
  readonly backend?: string | undefined
  readonly responseModel?: string | undefined
  readonly inputTokens?: number | undefined
  readonly outputTokens?: number | undefined
  readonly queueWaitMs?: number | undefined
}

export interface RequestSpan {
  describe(details: RequestSpanDetails): void
  /** The wait in the admission queue; ended with the rejection's code when it was not admitted. */
  startQueue(): ChildSpan
  /** The upstream call to `url` on `backend`. */
  startForward(backend: string, url: string): ForwardSpan
  /** Idempotent: the first ending counts. */
  end(ending: RequestSpanEnding): void
}

export interface ChildSpan {
  /** Idempotent; `errorCode` marks a failure (`error.type`). */
  end(errorCode?: string): void
}

export interface ForwardSpan extends ChildSpan {
  /** Headers to send upstream (`traceparent`, `tracestate`): the backend's work is a child of this call. */
  readonly headers: Readonly<Record<string, string>>
  responded(statusCode: number): void
}

const NOOP_CHILD: ForwardSpan = { headers: {}, end() {}, responded() {} }
export const NOOP_REQUEST_SPAN: RequestSpan = {
  describe() {},
  startQueue: () => NOOP_CHILD,
  startForward: () => NOOP_CHILD,
  end() {},
}

/**
 * Tracing off: nothing is recorded and nothing is sent. A client's own `traceparent` still reaches the
 * backend unchanged (the forwarded headers keep it), so a trace that passes through kvgate is not broken.
 */
export const NOOP_REQUEST_TRACER: RequestTracer = {
  startRequest: () => NOOP_REQUEST_SPAN,
  shutdown: async () => {},
}
