import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { request as undiciRequest, type Dispatcher } from 'undici'
import { type AdmissionController, rateLimitHeaders, type RoutingHints } from '../admission/index.js'
import type { KvgateConfig } from '../config/index.js'
import { clockTimeoutSignal, type Clock } from '../core/index.js'
import { errors, toKvgateError } from '../errors/index.js'
import type { Identity, IdentityResolver } from '../identity/index.js'
import type { Predictor } from '../predictor/index.js'
import {
  type ForwardSpan,
  type GatewayMetrics,
  NOOP_REQUEST_TRACER,
  type RequestTracer,
  type UsageTally,
} from '../telemetry/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { DEFAULT_MODEL_KEY } from './completion-request.js'
import { checkContextLength } from './context-length.js'
import { fromFastifyError } from './fastify-errors.js'
import { forwardJson } from './forward-json.js'
import { forwardSse } from './forward-sse.js'
import type { GeneratingRoute, GenerationRequest } from './generating-route.js'
import { type InFlight, shutdownCut } from './in-flight.js'
import { readOutputHint } from './output-hint.js'
import { RequestLifecycle } from './request-lifecycle.js'
import { maskSecrets } from './secret-mask.js'
import { UpstreamCall, upstreamHeaders } from './upstream-call.js'

export interface ProxyDeps {
  readonly clock: Clock
  readonly admission: AdmissionController
  readonly predictor: Predictor
  readonly tokens: TokenCounter
  /** The undici dispatcher to the backends (keep-alive connections, no timers of its own). */
  readonly dispatcher: Dispatcher
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  /** The config and identity in force now (a reload swaps them between requests). */
  current(): { readonly config: KvgateConfig; readonly identity: IdentityResolver }
  backendUrl(backendId: string): string | undefined
  /** A usable backend of `model`'s pool to count a prompt with (`admission.exactPromptTokens`); undefined when none is. */
  tokenizeBaseUrl(model: string): string | undefined
  /** An admitted request failed on this backend (5xx, broken stream): its health is worth checking now. */
  onUpstreamFailure?(backendId: string): void
  /** Model pools and routing keys (src/routing's fleet). */
  readonly pools: ModelPools
  /** Requests being forwarded, so shutdown can wait for them and abort them after its grace period. */
  readonly inFlight: InFlight
  /** Requests begun and ended (logged and counted); equal whenever nothing is in progress. */
  readonly tally: { started: number; ended: number }
  /** Traces of generating requests; none recorded when absent (`tracing.enabled: false`). */
  readonly tracer?: RequestTracer
  /** Per-user usage over time (`/debug/usage`). */
  readonly usage?: UsageTally
}

/** What the request path needs of the fleet's model pools. */
export interface ModelPools {
  /** The model a request goes to (none named: undefined) and its pool's context length; throws 404/503. */
  resolveModel(requested: string | undefined): { readonly model: string; readonly maxModelLen: number | undefined }
  routingHints(
    request: {
      readonly model: string
      readonly headers: IncomingHttpHeaders
      readonly tokenIds: () => readonly number[]
    },
    arrivedAtMs: number,
  ): RoutingHints
}

/**
 * Register a generating route (on its path and its aliases): once the request gate (request-gate.ts) has
 * routed it and checked its key, the route's `onRequest` takes the request over into a lifecycle and watches
 * its raw response for a client that leaves; Fastify reads the body (bounded, json-body.ts) and validates it
 * against the route's schema; the handler identifies, estimates the need, waits for admission and forwards;
 * `onResponse` reports the exchange once it went out. Fastify's refusals on the way (bad JSON, a body too
 * large, too deep or too slow, a shape the schema refuses) reach the same lifecycle through the route's error
 * handler, so every request to the route is counted and logged exactly once, however it ends.
 */
export function registerGeneratingRoute(app: FastifyInstance, deps: ProxyDeps, route: GeneratingRoute): void {
  for (const path of [route.path, ...(route.aliases ?? [])]) registerPath(app, deps, route, path)
}

function registerPath(app: FastifyInstance, deps: ProxyDeps, route: GeneratingRoute, path: string): void {
  const lifecycles = new WeakMap<FastifyRequest, RequestLifecycle>()
  const lifecycleDeps = {
    clock: deps.clock,
    metrics: deps.metrics,
    logger: deps.logger,
    predictor: deps.predictor,
    tally: deps.tally,
    usage: deps.usage,
    mask: (text: string) => maskSecrets(text, deps.current().config),
    labelFor: (keyUser: string | undefined) => {
      const { config, identity } = deps.current()
      return identity.labelFor(keyUser ?? config.identity.anonymousUser)
    },
    rateLimitHeaders: (identity: Identity) => rateLimitHeaders(deps.admission.rateLimits(identity.user)),
  }
  app.post(path, {
    config: { routeClass: 'generating' },
    ...(route.bodySchema === undefined ? {} : { schema: { body: route.bodySchema } }),
    onRequest(request, reply, done) {
      const lifecycle = new RequestLifecycle(lifecycleDeps, reply, request.kvgate.id, request.kvgate.key.keyUser)
      request.kvgate.reportedByLifecycle = true
      lifecycle.span = (deps.tracer ?? NOOP_REQUEST_TRACER).startRequest(request.headers, route.path)
      lifecycles.set(request, lifecycle)
      // Fastify has no hook for a response that closed before it finished (`onRequestAbort` fires only while
      // the body is still being read): the raw close is where a client that left is seen. A response that
      // went out whole is over at its close too: `onResponse` below does not always come for a hijacked
      // (streamed) reply, and a request it missed would never be reported (both are idempotent).
      reply.raw.on('close', () => {
        if (reply.raw.writableFinished) lifecycle.responded()
        else lifecycle.clientClosed()
      })
      done()
    },
    onResponse(request, _reply, done) {
      lifecycles.get(request)?.responded()
      done()
    },
    errorHandler(err, request, reply) {
      const lifecycle = lifecycles.get(request)
      const error = fromFastifyError(err)
      if (lifecycle !== undefined) lifecycle.fail(error)
      else void reply.code(error.statusCode).send(error.toBody())
    },
    handler: async (request) => {
      const lifecycle = lifecycles.get(request)
      if (lifecycle === undefined) return
      try {
        await handleGeneration(lifecycle, route, request, deps)
      } catch (err) {
        lifecycle.fail(err)
      }
      // A path that forgot to end is a bug; end it rather than leave its reservation and its line behind.
      if (!lifecycle.ended) lifecycle.fail(errors.internal(['the request ended without an outcome']))
    },
  })
}

/** Who, what, how much; wait for admission; forward. Throws what the lifecycle answers (`fail`). */
async function handleGeneration(
  lifecycle: RequestLifecycle,
  route: GeneratingRoute,
  req: FastifyRequest,
  deps: ProxyDeps,
): Promise<void> {
  lifecycle.beginHandling()
  const { clock, metrics } = deps
  const { config, identity: resolver } = deps.current()

  // 1. Who, what, how much.
  let request = route.parse(req.body, deps.tokens)
  lifecycle.request = request
  // The key was checked by the request gate before the body was read; the header and body may add a name.
  const identity = resolver.identify(req.kvgate.key, {
    headerValue: req.headers[config.identity.header],
    bodyUser: request.body['user'],
  })
  lifecycle.identity = identity
  const deadlineMs = deadlineFor(req.headers, config)
  // The model's pool, before anything is queued: an unknown model is vLLM's 404 here and now.
  const pool = deps.pools.resolveModel(request.model === DEFAULT_MODEL_KEY ? undefined : request.model)
  request = withModel(request, pool.model)
  lifecycle.request = request
  if (config.admission.exactPromptTokens) {
    request = await withExactPromptTokens(request, route, deps, lifecycle.abort.signal)
    lifecycle.request = request
  }
  if (config.models.contextLengthCheck) checkContextLength(request, pool.maxModelLen, config.models.estimateMarginRatio)
  const estimate = route.predictOutput?.(request, deps.predictor)
  lifecycle.predicted = estimate === undefined
  lifecycle.predictorPerSequence =
    estimate ?? deps.predictor.predict(request.model, request.maxTokens, identity.user.name)
  const { hint, result: hintResult } = readOutputHint(
    req.headers,
    config.admission.outputHintHeader,
    identity.trustsOutputHint,
    request.maxTokens,
  )
  if (hintResult !== undefined) metrics.outputHint(hintResult)
  lifecycle.predictedPerSequence = hint?.tokens ?? lifecycle.predictorPerSequence
  lifecycle.span.describe({
    operation: genAiOperation(route.path),
    model: request.model,
    maxTokens: request.maxTokens,
    user: identity.user.name,
    policy: config.policy.name,
    promptTokens: request.promptTokens,
    predictedTokens: lifecycle.predictedPerSequence * request.sequences,
    stream: request.stream,
  })

  // 2. Wait for admission.
  const routed = request
  let admission: Awaited<ReturnType<AdmissionController['submit']>>
  const queueSpan = lifecycle.span.startQueue()
  try {
    admission = await deps.admission.submit({
      id: lifecycle.id,
      user: identity.user,
      model: request.model,
      promptTokens: request.promptTokens,
      predictedOutputTokens: lifecycle.predictedPerSequence * request.sequences,
      deadlineMs,
      signal: lifecycle.abort.signal,
      routing: deps.pools.routingHints(
        {
          model: request.model,
          headers: req.headers,
          tokenIds: () => route.promptTokenIds?.(routed, deps.tokens) ?? [],
        },
        lifecycle.startMs,
      ),
    })
  } catch (err) {
    metrics.queueWait(lifecycle.clientGone ? 'cancelled' : 'rejected', (clock.now() - lifecycle.startMs) / 1000)
    queueSpan.end(toKvgateError(err).code)
    throw err
  }
  queueSpan.end()
  lifecycle.admission = admission
  metrics.admitted(identity.label)
  metrics.queueWait('admitted', admission.waitedMs / 1000)
  if (lifecycle.clientGone) return lifecycle.end({ outcome: 'cancelled_queued', status: 499 })

  // 3. Forward.
  const baseUrl = deps.backendUrl(admission.backendId)
  if (baseUrl === undefined) throw errors.noBackendAvailable([`backend ${admission.backendId} is not configured`])
  deps.inFlight.add(lifecycle.abort)
  let forwardSpan: ForwardSpan | undefined
  try {
    // The path kvgate routed on, normalised and re-encoded: what the backend decodes is what was admitted.
    const target = req.kvgate.target
    const url = baseUrl + (target === undefined ? route.path : target.encodedPath + target.search)
    forwardSpan = lifecycle.span.startForward(admission.backendId, url)
    const upstream = await UpstreamCall.open({
      url,
      dispatcher: deps.dispatcher,
      clock,
      // With tracing on, the backend's parent is kvgate's upstream call, not the client's span.
      headers: { ...upstreamHeaders(req.headers, config), ...forwardSpan.headers },
      body: JSON.stringify(route.upstreamBody(request)),
      signal: lifecycle.abort.signal,
      headersTimeoutMs: config.forwarding.headersTimeoutMs,
      idleTimeoutMs: config.forwarding.idleTimeoutMs,
    })
    forwardSpan.responded(upstream.statusCode)
    // The quota state after this request was charged, as OpenAI sends it: before a stream's first byte.
    const headers = {
      ...rateLimitHeaders(deps.admission.rateLimits(identity.user)),
      'x-kvgate-request-id': lifecycle.id,
      'x-kvgate-backend': admission.backendId,
    }
    const ending =
      upstream.statusCode === 200 && request.stream
        ? await forwardSse({ lifecycle, request, admission, upstream, headers, clock, metrics })
        : await forwardJson(lifecycle, route, admission, upstream, headers, (text) => maskSecrets(text, config))
    if (ending.outcome === 'upstream_error') deps.onUpstreamFailure?.(admission.backendId)
    forwardSpan.end(ending.errorCode)
    lifecycle.end(ending)
  } catch (err) {
    // Shutdown gave up on it: not the backend's failure, and a 503 with retry-after if nothing was sent.
    const cut = shutdownCut(lifecycle.abort.signal)
    if (cut !== undefined) {
      forwardSpan?.end(cut.code)
      throw cut
    }
    const error = toKvgateError(err)
    forwardSpan?.end(error.code)
    if (error.outcome === 'upstream_error') deps.onUpstreamFailure?.(admission.backendId)
    throw err
  } finally {
    deps.inFlight.delete(lifecycle.abort)
  }
}

/**
 * The request as sent to `model`'s pool: a body that named no model names it now, so a backend serving
 * several models answers with the one the gateway routed for (vLLM would pick its own first model).
 */
function withModel(request: GenerationRequest, model: string): GenerationRequest {
  if (request.model === model && typeof request.body['model'] === 'string') return request
  const named = typeof request.body['model'] === 'string' && request.body['model'] !== ''
  return { ...request, model, body: named ? request.body : { ...request.body, model } }
}

/** GenAI `gen_ai.operation.name` of a route: OpenAI's chat and completions APIs, else the path's last part. */
function genAiOperation(path: string): string {
  if (path.endsWith('/chat/completions') || path.endsWith('/responses')) return 'chat'
  if (path.endsWith('/completions')) return 'text_completion'
  if (path.endsWith('/embeddings')) return 'embeddings'
  return path.slice(path.lastIndexOf('/') + 1)
}

// A positive decimal integer: `Number()` would also take `0x10`, `1e3`, ` 5 ` and `Infinity`.
const DECIMAL_MS = /^[0-9]{1,15}$/

/** The client's own queue deadline from its header, capped; 400 when it is not a positive decimal integer of ms. */
function deadlineFor(headers: IncomingHttpHeaders, config: KvgateConfig): number {
  const { deadlineHeader, defaultDeadlineMs, maxDeadlineMs } = config.admission
  const raw = headers[deadlineHeader]
  if (raw === undefined) return defaultDeadlineMs
  const text = Array.isArray(raw) ? raw.join(',') : raw
  const value = DECIMAL_MS.test(text) ? Number(text) : 0
  if (value <= 0) {
    throw errors.invalidRequest(
      [`The ${deadlineHeader} header must be a positive whole number of milliseconds (decimal digits only)`],
      { param: deadlineHeader },
    )
  }
  return Math.min(value, maxDeadlineMs)
}

/**
 * The backend's own tokenizer, when configured: the local counter is a stand-in that can be far from a
 * model's BPE. One extra round trip on loopback or the same network, bounded by `metricsPoll.timeoutMs` on
 * the clock; any failure keeps the estimate, since a slightly wrong need is better than a refused request.
 */
async function withExactPromptTokens(
  request: GenerationRequest,
  route: GeneratingRoute,
  deps: ProxyDeps,
  signal: AbortSignal,
): Promise<GenerationRequest> {
  const baseUrl = deps.tokenizeBaseUrl(request.model)
  const body = route.tokenizeBody?.(request)
  if (baseUrl === undefined || body === undefined) return request
  const timeout = clockTimeoutSignal(deps.clock, deps.current().config.metricsPoll.timeoutMs, () =>
    errors.upstreamError(['/tokenize took too long']),
  )
  try {
    const response = await undiciRequest(`${baseUrl}/tokenize`, {
      method: 'POST',
      dispatcher: deps.dispatcher,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, timeout.signal]),
    })
    const answer = (await response.body.json()) as { count?: unknown }
    if (response.statusCode !== 200 || typeof answer.count !== 'number') return request
    // One prompt here, so its n sequences are all the sequences (reserved n times, as the estimate is).
    return {
      ...request,
      promptTokens: answer.count * request.sequences,
      longestPromptTokens: answer.count,
      promptTokensExact: true,
    }
  } catch {
    return request
  } finally {
    timeout.clear()
  }
}
