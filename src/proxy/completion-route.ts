import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { request as undiciRequest, type Dispatcher } from 'undici'
import type { Admission, AdmissionController } from '../admission/index.js'
import type { KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import { errors, toKvgateError, type KvgateError } from '../errors/index.js'
import type { Identity, IdentityResolver } from '../identity/index.js'
import { API_KEY_HEADERS } from '../identity/index.js'
import type { Predictor } from '../predictor/index.js'
import type { GatewayMetrics, RequestOutcome } from '../telemetry/index.js'
import type { TokenCounter } from '../tokens/index.js'
import {
  DEFAULT_MODEL_KEY,
  parseCompletionRequest,
  upstreamBody,
  type CompletionKind,
  type CompletionRequest,
} from './completion-request.js'
import { createSseRelay } from './sse-relay.js'

export interface CompletionRouteDeps {
  readonly clock: Clock
  readonly admission: AdmissionController
  readonly predictor: Predictor
  readonly tokens: TokenCounter
  readonly dispatcher: Dispatcher
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  /** The config and identity in force now (a reload swaps them between requests). */
  current(): { readonly config: KvgateConfig; readonly identity: IdentityResolver }
  backendUrl(backendId: string): string | undefined
  /** A usable backend to count a prompt with (`admission.exactPromptTokens`); undefined when none is. */
  tokenizeBaseUrl(): string | undefined
  nextRequestId(): string
  /** Requests being forwarded, so shutdown can abort them after its grace period. */
  readonly inFlight: Set<AbortController>
  /** Handlers entered and requests ended (logged and counted); equal whenever nothing is in progress. */
  readonly tally: { started: number; ended: number }
}

/** How one request ended: the `kvgate_requests_total` outcome and the log line's fields. */
interface Ending {
  outcome: RequestOutcome
  status: number
  errorCode?: string | undefined
}

const PATHS: Record<CompletionKind, string> = { chat: '/v1/chat/completions', completion: '/v1/completions' }

// Client headers that never go upstream: hop-by-hop, recomputed, or kvgate's own.
const DROPPED_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'proxy-authorization',
  'te',
  'trailer',
  'expect',
  // The gateway parses the stream; a compressed one would hide the tokens.
  'accept-encoding',
])

const REJECTION_OUTCOMES: Readonly<Record<string, RequestOutcome>> = {
  queue_full: 'rejected_queue_full',
  queue_deadline_exceeded: 'rejected_deadline',
  predicted_wait_exceeds_deadline: 'rejected_early',
  quota_exceeded: 'rejected_quota',
  no_backend_available: 'rejected_unavailable',
  shutting_down: 'rejected_unavailable',
  request_exceeds_kv_capacity: 'invalid_request',
  request_cancelled: 'cancelled_queued',
}

function upstreamHeaders(headers: IncomingHttpHeaders, config: KvgateConfig): Record<string, string> {
  const out: Record<string, string> = {}
  const dropped = new Set([config.identity.header, config.admission.deadlineHeader])
  if (!config.identity.forwardApiKey) for (const name of API_KEY_HEADERS) dropped.add(name)
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROPPED_HEADERS.has(name) || dropped.has(name)) continue
    out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  out['content-type'] = 'application/json'
  return out
}

function deadlineFor(headers: IncomingHttpHeaders, config: KvgateConfig): number {
  const { deadlineHeader, defaultDeadlineMs, maxDeadlineMs } = config.admission
  const raw = headers[deadlineHeader]
  if (raw === undefined) return defaultDeadlineMs
  const value = Number(Array.isArray(raw) ? raw[0] : raw)
  if (!Number.isFinite(value) || value <= 0) {
    throw errors.invalidRequest([`The ${deadlineHeader} header must be a positive number of milliseconds`], {
      param: deadlineHeader,
    })
  }
  return Math.min(Math.round(value), maxDeadlineMs)
}

/**
 * Resolve true on 'drain', on 'close' (a gone client never drains) or on abort; false when the client has
 * read nothing for `timeoutMs`. A client that stops reading must not hold the relay (and its reservation, and
 * a graceful shutdown's abort) for as long as it stalls.
 */
function drained(raw: ServerResponse, signal: AbortSignal, clock: Clock, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(true)
    const settle = (result: boolean): void => {
      raw.off('drain', done)
      raw.off('close', done)
      signal.removeEventListener('abort', done)
      clock.clearTimeout(timer)
      resolve(result)
    }
    const done = (): void => settle(true)
    const timer = clock.setTimeout(() => settle(false), timeoutMs)
    raw.on('drain', done)
    raw.on('close', done)
    signal.addEventListener('abort', done)
  })
}

function sseEvent(body: unknown): string {
  return `data: ${JSON.stringify(body)}\n\n`
}

/**
 * POST /v1/chat/completions and /v1/completions: identify, estimate the need, wait for admission, forward to
 * the admitted backend and stream the answer back while counting its tokens. Every path out of here ends the
 * admission exactly once (`finish` is also idempotent), counts one outcome, and writes one log line.
 */
export function createCompletionHandler(deps: CompletionRouteDeps, kind: CompletionKind) {
  return async function handleCompletion(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { clock, metrics } = deps
    const startMs = clock.now()
    const id = deps.nextRequestId()
    deps.tally.started++
    const { config, identity: resolver } = deps.current()
    const abort = new AbortController()
    let clientGone = false
    const onClose = (): void => {
      if (reply.raw.writableFinished) return
      clientGone = true
      abort.abort(new Error('client disconnected'))
    }
    reply.raw.on('close', onClose)

    let identity: Identity | undefined
    let parsed: CompletionRequest | undefined
    let predictedPerSequence = 0
    let admitted: Admission | undefined
    let ttftMs: number | undefined
    let completionTokens = 0
    let promptTokensServed: number | undefined

    const log = (ending: Ending): void => {
      deps.tally.ended++
      const userLabel = identity?.label ?? 'anonymous'
      const durationMs = clock.now() - startMs
      metrics.requestEnded(ending.outcome, userLabel)
      if (admitted !== undefined) {
        metrics.requestDuration(userLabel, durationMs / 1000)
        metrics.tokensServed(userLabel, 'prompt', promptTokensServed ?? parsed?.promptTokens ?? 0)
        metrics.tokensServed(userLabel, 'completion', completionTokens)
      }
      deps.logger.info(
        {
          reqId: id,
          user: identity?.user.name,
          backend: admitted?.backendId,
          outcome: ending.outcome,
          status: ending.status,
          error: ending.errorCode,
          model: parsed?.model,
          stream: parsed?.stream,
          waitMs: admitted?.waitedMs,
          promptTokens: parsed?.promptTokens,
          predictedTokens: parsed === undefined ? undefined : predictedPerSequence * parsed.sequences,
          completionTokens,
          ttftMs,
          durationMs: Math.round(durationMs),
        },
        'request finished',
      )
    }

    const sendError = (err: KvgateError): void => {
      if (clientGone || reply.sent) return
      void reply
        .code(err.statusCode)
        .headers({ ...err.headers, 'x-kvgate-request-id': id })
        .send(err.toBody())
    }

    try {
      // 1. Who, what, how much.
      try {
        parsed = parseCompletionRequest(kind, req.body, deps.tokens)
        identity = resolver.resolve({
          authorization: req.headers.authorization,
          headerValue: req.headers[config.identity.header],
          bodyUser: parsed.body['user'],
        })
      } catch (err) {
        const error = toKvgateError(err)
        sendError(error)
        log({ outcome: 'invalid_request', status: error.statusCode, errorCode: error.code })
        return
      }
      if (config.admission.exactPromptTokens) parsed = await withExactPromptTokens(parsed)
      const request = parsed
      const user = identity
      predictedPerSequence = deps.predictor.predict(request.model, request.maxTokens)
      let deadlineMs: number
      try {
        deadlineMs = deadlineFor(req.headers, config)
      } catch (err) {
        const error = toKvgateError(err)
        sendError(error)
        log({ outcome: 'invalid_request', status: error.statusCode, errorCode: error.code })
        return
      }

      // 2. Wait for admission.
      try {
        admitted = await deps.admission.submit({
          id,
          user: user.user,
          model: request.model,
          promptTokens: request.promptTokens,
          predictedOutputTokens: predictedPerSequence * request.sequences,
          deadlineMs,
          signal: abort.signal,
        })
      } catch (err) {
        const waitedSeconds = (clock.now() - startMs) / 1000
        if (clientGone) {
          metrics.queueWait('cancelled', waitedSeconds)
          log({ outcome: 'cancelled_queued', status: 499 })
          return
        }
        const error = toKvgateError(err)
        metrics.queueWait('rejected', waitedSeconds)
        sendError(error)
        log({
          outcome: REJECTION_OUTCOMES[error.code] ?? 'rejected_unavailable',
          status: error.statusCode,
          errorCode: error.code,
        })
        return
      }
      const admission = admitted
      metrics.admitted(user.label)
      metrics.queueWait('admitted', admission.waitedMs / 1000)
      if (clientGone) {
        admission.finish(0)
        log({ outcome: 'cancelled_queued', status: 499 })
        return
      }

      // 3. Forward.
      deps.inFlight.add(abort)
      try {
        const ending = await forward(request, admission)
        if (ending.outcome === 'completed') {
          deps.predictor.observe(request.model, predictedPerSequence, completionTokens / request.sequences)
        }
        admission.finish(completionTokens)
        log(ending)
      } finally {
        deps.inFlight.delete(abort)
      }
    } catch (err) {
      // A bug, not an outcome: still release and answer in OpenAI's shape.
      const error = toKvgateError(err)
      admitted?.finish(completionTokens)
      deps.logger.error({ reqId: id, err }, 'request failed unexpectedly')
      if (!reply.sent && !clientGone) sendError(error)
      else if (!reply.raw.writableEnded) reply.raw.end()
      log({ outcome: 'upstream_error', status: error.statusCode, errorCode: error.code })
    } finally {
      reply.raw.off('close', onClose)
    }

    /**
     * The backend's own tokenizer, when configured: the local counter is a stand-in that can be far from a
     * model's BPE. One extra round trip on loopback or the same network; any failure keeps the estimate,
     * since a slightly wrong need is better than a refused request.
     */
    async function withExactPromptTokens(request: CompletionRequest): Promise<CompletionRequest> {
      const baseUrl = deps.tokenizeBaseUrl()
      const prompt = request.body['prompt']
      const body =
        request.kind === 'chat'
          ? { messages: request.body['messages'], add_generation_prompt: true }
          : typeof prompt === 'string'
            ? { prompt }
            : undefined // token ids count themselves; batched prompts would need one call each
      if (baseUrl === undefined || body === undefined) return request
      try {
        const response = await undiciRequest(`${baseUrl}/tokenize`, {
          method: 'POST',
          dispatcher: deps.dispatcher,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(request.model === DEFAULT_MODEL_KEY ? body : { model: request.model, ...body }),
          signal: AbortSignal.any([abort.signal, AbortSignal.timeout(config.metricsPoll.timeoutMs)]),
        })
        const answer = (await response.body.json()) as { count?: unknown }
        if (response.statusCode !== 200 || typeof answer.count !== 'number') return request
        // One prompt here, so its n sequences are all the sequences (reserved n times, as the estimate is).
        return { ...request, promptTokens: answer.count * request.sequences }
      } catch {
        return request
      }
    }

    async function forward(request: CompletionRequest, admission: Admission): Promise<Ending> {
      const baseUrl = deps.backendUrl(admission.backendId)
      if (baseUrl === undefined) {
        const error = errors.noBackendAvailable([`backend ${admission.backendId} is not configured`])
        sendError(error)
        return { outcome: 'rejected_unavailable', status: error.statusCode, errorCode: error.code }
      }
      let upstream: Dispatcher.ResponseData
      try {
        upstream = await undiciRequest(baseUrl + PATHS[kind], {
          method: 'POST',
          dispatcher: deps.dispatcher,
          headers: upstreamHeaders(req.headers, config),
          body: JSON.stringify(upstreamBody(request)),
          signal: abort.signal,
          // A wedged backend ends as an upstream error (and releases the reservation) instead of holding it.
          headersTimeout: config.forwarding.headersTimeoutMs,
          bodyTimeout: config.forwarding.idleTimeoutMs,
        })
      } catch (err) {
        if (clientGone) return { outcome: 'cancelled_streaming', status: 499 }
        const error = errors.upstreamError([(err as Error).message], { cause: err })
        sendError(error)
        return { outcome: 'upstream_error', status: error.statusCode, errorCode: error.code }
      }

      const contentType = String(upstream.headers['content-type'] ?? 'application/json')
      const extraHeaders = { 'x-kvgate-request-id': id, 'x-kvgate-backend': admission.backendId }
      if (upstream.statusCode !== 200 || !request.stream) {
        // A whole JSON body: an error in vLLM's shape, or a non-streaming completion.
        let text: string
        try {
          text = await upstream.body.text()
        } catch (err) {
          if (clientGone) return { outcome: 'cancelled_streaming', status: 499 }
          const error = errors.upstreamError([(err as Error).message], { cause: err })
          sendError(error)
          return { outcome: 'upstream_error', status: error.statusCode, errorCode: error.code }
        }
        if (clientGone) return { outcome: 'cancelled_streaming', status: 499 }
        if (upstream.statusCode === 200) {
          try {
            const usage = (JSON.parse(text) as { usage?: { completion_tokens?: unknown; prompt_tokens?: unknown } })
              .usage
            if (typeof usage?.completion_tokens === 'number') completionTokens = usage.completion_tokens
            if (typeof usage?.prompt_tokens === 'number') promptTokensServed = usage.prompt_tokens
          } catch {
            // Not JSON: passed on as is; the completion length stays unknown (0).
          }
          admission.recordTokens(completionTokens)
        }
        await reply.code(upstream.statusCode).headers(extraHeaders).type(contentType).send(text)
        if (upstream.statusCode === 200) return { outcome: 'completed', status: 200 }
        // vLLM refusing the request itself (context too long, bad parameter) is the client's mistake.
        return {
          outcome: upstream.statusCode < 500 ? 'invalid_request' : 'upstream_error',
          status: upstream.statusCode,
        }
      }

      // Streaming: hand the raw response over from Fastify and relay each upstream chunk as it comes (its complete events in one write, never buffered whole).
      reply.hijack()
      const raw = reply.raw
      raw.writeHead(200, {
        'content-type': contentType,
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        ...extraHeaders,
      })
      const relay = createSseRelay({
        stripUsageChunk: !request.clientWantsUsage,
        write: (text) => {
          if (!clientGone) raw.write(text)
        },
        onFirstContent: () => {
          ttftMs = clock.now() - startMs
          deps.metrics.timeToFirstToken(identity?.label ?? 'anonymous', ttftMs / 1000)
          admission.firstToken()
        },
        onTokens: (tokens) => admission.recordTokens(tokens),
      })
      let failure: unknown
      try {
        for await (const chunk of upstream.body) {
          relay.push(chunk as Uint8Array)
          if (raw.writableNeedDrain && !(await drained(raw, abort.signal, clock, config.forwarding.idleTimeoutMs))) {
            // Read nothing for as long as a silent backend is given: treat it as gone so its KV is released.
            clientGone = true
            abort.abort(new Error('client stopped reading'))
            raw.destroy()
          }
          if (clientGone) break
        }
        relay.end()
      } catch (err) {
        failure = err
      }
      completionTokens = relay.usage?.completionTokens ?? relay.completionTokens
      promptTokensServed = relay.usage?.promptTokens
      if (clientGone) {
        upstream.body.destroy()
        return { outcome: 'cancelled_streaming', status: 200 }
      }
      if (failure !== undefined || !relay.sawDone) {
        // The stream broke after it started: vLLM's way is an error event, then [DONE], on the 200.
        const reason = failure === undefined ? 'the stream ended without [DONE]' : (failure as Error).message
        const error = errors.upstreamError([reason], { cause: failure })
        raw.end(`${sseEvent(error.toBody())}data: [DONE]\n\n`)
        return { outcome: 'upstream_error', status: 200, errorCode: error.code }
      }
      raw.end()
      if (relay.upstreamError !== undefined)
        return { outcome: 'upstream_error', status: 200, errorCode: 'upstream_error' }
      return { outcome: 'completed', status: 200 }
    }
  }
}
