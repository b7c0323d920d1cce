import type { FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import type { Admission } from '../admission/index.js'
import type { Clock } from '../core/index.js'
import { KvgateError, toKvgateError, type RequestOutcome } from '../errors/index.js'
import type { Identity } from '../identity/index.js'
import type { Predictor } from '../predictor/index.js'
import { type GatewayMetrics, NOOP_REQUEST_SPAN, type RequestSpan, type UsageTally } from '../telemetry/index.js'
import type { GenerationRequest } from './generating-route.js'

/** How one request ended: its `kvgate_requests_total` outcome, the status sent, the error code if any. */
export interface Ending {
  readonly outcome: RequestOutcome
  readonly status: number
  readonly errorCode?: string | undefined
}

export interface LifecycleDeps {
  readonly clock: Clock
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  readonly predictor: Predictor
  /** Requests begun and ended (logged and counted); equal whenever nothing is in progress. */
  readonly tally: { started: number; ended: number }
  /**
   * The metric label of a request not yet identified (its body did not parse): its key's user, checked by
   * the request gate before the body was read, or the anonymous user.
   */
  labelFor(keyUser: string | undefined): string
  /** Text from a client (a model name, a user name) as a log line may hold it: no configured key in it. */
  mask(text: string): string
  /** OpenAI's `x-ratelimit-*` for a user with a quota (empty without one): on every answer, errors too. */
  rateLimitHeaders?(identity: Identity): Record<string, string>
  /** Per-user usage over time (`/debug/usage`), fed once per request with the report. */
  readonly usage?: UsageTally | undefined
}

/** An SSE event: the way errors reach a client once its stream has started (vLLM's own way). */
export function sseEvent(body: unknown): string {
  return `data: ${JSON.stringify(body)}\n\n`
}

/**
 * One request to a generating route, from the `onRequest` hook to its log line: it owns the one ending of
 * the request (outcome, status, error code, the release of its admission, the predictor's sample) and its
 * one report (the log line and the metrics).
 *
 * The ending and the report are apart because they happen at different moments: a request *ends* when kvgate
 * knows its outcome (the upstream finished, a rejection was decided, the client left), and releases its KV at
 * once; it is *reported* when the exchange is over too — Fastify's `onResponse` (the response went out whole)
 * or the raw socket's close (the client left first) — so the duration is the client's and the line is written
 * once, whichever of the two comes last.
 *
 * Who ends it: until the handler starts (the body is still arriving) the client leaving ends it here
 * (`cancelled_queued`); from then on the handler's flow ends it, the client leaving only aborts what the
 * flow waits on. `end()` is idempotent, so a second ending can never change the first.
 */
export class RequestLifecycle {
  readonly id: string
  readonly startMs: number
  readonly reply: FastifyReply
  /** Aborted when the client goes away, or when shutdown gives up on the request. */
  readonly abort = new AbortController()
  clientGone = false
  identity: Identity | undefined
  request: GenerationRequest | undefined
  /** Output reserved per sequence (the predictor's figure, or a trusted client's hint). */
  predictedPerSequence = 0
  /** What the predictor said per sequence, hint or not: its coverage is judged on it. */
  predictorPerSequence = 0
  /** The predictor made the estimate (the route has no fixed one of its own): it learns from the answer. */
  predicted = false
  /** How the answer ended (`length`: cut by max_tokens, a censored length for the predictor). */
  finishReason: string | undefined
  admission: Admission | undefined
  ttftMs: number | undefined
  completionTokens = 0
  promptTokensServed: number | undefined
  /** The model the backend says answered (its body's `model`), for the trace. */
  responseModel: string | undefined
  /** The request's trace span (the no-op one while tracing is off); ended with the report. */
  span: RequestSpan = NOOP_REQUEST_SPAN
  readonly #deps: LifecycleDeps
  readonly #keyUser: string | undefined
  #handling = false
  #ending: Ending | undefined
  #exchangeOver = false
  #reported = false

  constructor(deps: LifecycleDeps, reply: FastifyReply, id: string, keyUser?: string) {
    this.#deps = deps
    this.#keyUser = keyUser
    this.reply = reply
    this.id = id
    this.startMs = deps.clock.now()
    deps.tally.started++
  }

  get ended(): boolean {
    return this.#ending !== undefined
  }

  get userLabel(): string {
    return this.identity?.label ?? this.#deps.labelFor(this.#keyUser)
  }

  /** The handler runs: from here its flow ends the request. */
  beginHandling(): void {
    this.#handling = true
  }

  /** The raw response closed before it finished: the client is gone. */
  clientClosed(): void {
    if (this.#exchangeOver) return
    this.clientGone = true
    this.abort.abort(new Error('client disconnected'))
    // Nothing else will end a request whose body was still arriving.
    if (!this.#handling) this.end({ outcome: 'cancelled_queued', status: 499 })
    this.#exchangeOver = true
    this.#report()
  }

  /** Fastify's `onResponse`: the response went out whole. */
  responded(): void {
    this.#exchangeOver = true
    this.#report()
  }

  /** The one ending: release the admission (feeding the predictor if it completed) and remember how it ended. */
  end(ending: Ending): void {
    if (this.#ending !== undefined) return
    this.#ending = ending
    const { admission, request } = this
    if (admission !== undefined) {
      if (ending.outcome === 'completed' && this.predicted && request !== undefined) {
        this.#deps.predictor.observe(
          request.model,
          this.predictorPerSequence,
          this.completionTokens / request.sequences,
          {
            ...(this.identity === undefined ? {} : { user: this.identity.user.name }),
            ...(this.finishReason === undefined ? {} : { finishReason: this.finishReason }),
            ...(request.maxTokens === undefined ? {} : { maxTokens: request.maxTokens }),
          },
        )
      }
      admission.finish(this.completionTokens, ending.outcome)
    }
    this.#report()
  }

  /**
   * "Convert the error, send it, end": anything thrown on the way becomes a KvgateError in OpenAI's shape,
   * is answered if nothing was sent yet (an error event and `[DONE]` if a stream had started), and ends the
   * request with the error's own outcome. A client already gone gets nothing and ends as cancelled.
   */
  fail(err: unknown): void {
    if (this.#ending !== undefined) return
    const error = toKvgateError(err)
    if (!(err instanceof KvgateError)) {
      // A bug, not an outcome: keep its stack, count it, still release and answer.
      this.#deps.logger.error({ reqId: this.id, err }, 'request failed unexpectedly')
      this.#deps.metrics.internalError('proxy')
    }
    const raw = this.reply.raw
    if (this.clientGone) {
      const outcome = this.admission === undefined ? 'cancelled_queued' : 'cancelled_streaming'
      this.end({ outcome, status: raw.headersSent ? raw.statusCode : 499 })
      return
    }
    if (raw.headersSent) {
      // Too late for a status: end the stream the way vLLM reports an error after it started.
      if (!raw.writableEnded) raw.end(`${sseEvent(this.#maskedBody(error))}data: [DONE]\n\n`)
      this.end({ outcome: error.outcome, status: raw.statusCode, errorCode: error.code })
      return
    }
    // A rejection's own x-ratelimit-* (taken when it was decided) win over the state now.
    const limits = this.identity === undefined ? {} : (this.#deps.rateLimitHeaders?.(this.identity) ?? {})
    void this.reply
      .code(error.statusCode)
      .headers({ ...limits, ...error.headers, 'x-kvgate-request-id': this.id })
      .send(this.#maskedBody(error))
    this.end({ outcome: error.outcome, status: error.statusCode, errorCode: error.code })
  }

  /** The error as the client reads it: a message that echoes its input (a model name, a field) never shows a key. */
  #maskedBody(error: KvgateError): ReturnType<KvgateError['toBody']> {
    const body = error.toBody()
    return { error: { ...body.error, message: this.#deps.mask(body.error.message) } }
  }

  /** The log line and the metrics, once the request has ended and its exchange is over. */
  #report(): void {
    const ending = this.#ending
    if (ending === undefined || !this.#exchangeOver || this.#reported) return
    this.#reported = true
    const { metrics, logger, clock, tally } = this.#deps
    tally.ended++
    const { admission, request } = this
    const label = this.userLabel
    const durationMs = clock.now() - this.startMs
    metrics.requestEnded(ending.outcome, label)
    if (admission !== undefined) {
      metrics.requestDuration(label, durationMs / 1000)
      metrics.tokensServed(label, 'prompt', this.promptTokensServed ?? request?.promptTokens ?? 0)
      metrics.tokensServed(label, 'completion', this.completionTokens)
    }
    const inputTokens = this.promptTokensServed ?? request?.promptTokens ?? 0
    this.#deps.usage?.record({
      user: this.identity?.user.name ?? label,
      status: ending.status,
      admitted: admission !== undefined,
      completed: ending.outcome === 'completed',
      inputTokens,
      outputTokens: this.completionTokens,
    })
    this.span.end({
      outcome: ending.outcome,
      status: ending.status,
      errorCode: ending.errorCode,
      backend: admission?.backendId,
      responseModel: this.responseModel,
      inputTokens: admission === undefined ? undefined : inputTokens,
      outputTokens: admission === undefined ? undefined : this.completionTokens,
      queueWaitMs: admission?.waitedMs,
    })
    logger.info(
      {
        reqId: this.id,
        user: this.identity === undefined ? undefined : this.#deps.mask(this.identity.user.name),
        backend: admission?.backendId,
        outcome: ending.outcome,
        status: ending.status,
        error: ending.errorCode,
        model: request === undefined ? undefined : this.#deps.mask(request.model),
        stream: request?.stream,
        waitMs: admission?.waitedMs,
        promptTokens: request?.promptTokens,
        predictedTokens: request === undefined ? undefined : this.predictedPerSequence * request.sequences,
        completionTokens: this.completionTokens,
        ttftMs: this.ttftMs,
        durationMs: Math.round(durationMs),
      },
      'request finished',
    )
  }
}
