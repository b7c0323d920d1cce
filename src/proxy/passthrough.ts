import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import type { KvgateConfig } from '../config/index.js'
import { type Clock, VLLM_READ_ONLY_ROUTES, type VllmRoute } from '../core/index.js'
import { errors, type KvgateError, toKvgateError } from '../errors/index.js'
import { type BodyParserOptions, registerRawBodyParser } from './json-body.js'
import { maskSecrets } from './secret-mask.js'
import { UpstreamCall, upstreamHeaders } from './upstream-call.js'
import { fromUpstreamError } from './upstream-errors.js'

export interface PassthroughDeps extends BodyParserOptions {
  readonly clock: Clock
  /** The undici dispatcher to the backends (keep-alive connections, no timers of its own). */
  readonly dispatcher: Dispatcher
  /** Base URL of a usable backend for a request that skips admission, or undefined when none is usable. */
  pickUpstream(): string | undefined
  current(): { readonly config: KvgateConfig }
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
const ALLOWED_METHODS: Method[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']

// Response headers that describe the upstream connection or a body kvgate re-frames, never passed on.
const DROPPED_RESPONSE_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'trailer',
  'proxy-authenticate',
  'set-cookie',
])
const MAX_ERROR_BODY_BYTES = 64 * 1024 // 64 KiB of an upstream error body read to re-tell it; the rest is dropped

function answer(request: FastifyRequest, reply: FastifyReply, error: KvgateError): void {
  request.kvgate.outcome = error.outcome
  void reply.code(error.statusCode).headers(error.headers).send(error.toBody())
}

/**
 * One request passed to a usable backend without admission, on the path kvgate routed (normalised and
 * re-encoded, so uvicorn decodes exactly it), with the body kvgate read: JSON re-serialised from what was
 * parsed (no second reading of the same bytes can differ from kvgate's), or the bytes of an allow-listed
 * route's body as they came. A success streams back; an error is re-told in OpenAI's shape
 * (upstream-errors.ts), never passed on as the upstream wrote it.
 */
async function forward(request: FastifyRequest, reply: FastifyReply, deps: PassthroughDeps, raw: boolean) {
  const base = deps.pickUpstream()
  if (base === undefined) {
    return answer(request, reply, errors.noBackendAvailable(['no backend is usable'], { captureStack: false }))
  }
  const { config } = deps.current()
  const target = request.kvgate.target
  if (target === undefined) return answer(request, reply, errors.notFound(['Unknown request URL']))
  const method = request.method as Method
  const hasBody = method !== 'GET' && method !== 'HEAD' && request.body !== undefined
  const body = !hasBody ? undefined : raw ? (request.body as Buffer) : JSON.stringify(request.body)
  const contentType = raw ? String(request.headers['content-type'] ?? 'application/octet-stream') : 'application/json'
  const abort = new AbortController()
  reply.raw.once('close', () => abort.abort(new Error('client disconnected')))
  let upstream: UpstreamCall
  try {
    upstream = await UpstreamCall.open({
      url: base + target.encodedPath + target.search,
      method,
      dispatcher: deps.dispatcher,
      clock: deps.clock,
      headers: upstreamHeaders(request.headers, config, contentType),
      ...(body === undefined ? {} : { body }),
      signal: abort.signal,
      headersTimeoutMs: config.forwarding.headersTimeoutMs,
      idleTimeoutMs: config.forwarding.idleTimeoutMs,
    })
  } catch (err) {
    return answer(request, reply, toKvgateError(err))
  }
  if (upstream.statusCode >= 400) {
    const text = await upstream.text(MAX_ERROR_BODY_BYTES).catch(() => '')
    const mask = (message: string) => maskSecrets(message, config)
    return answer(request, reply, fromUpstreamError(upstream.statusCode, text, upstream.contentType, mask))
  }
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(upstream.response.headers)) {
    if (value === undefined || DROPPED_RESPONSE_HEADERS.has(name)) continue
    headers[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return reply.code(upstream.statusCode).headers(headers).send(Readable.from(upstream.chunks()))
}

/** vLLM's read-only routes (`/v1/models`, `/version`, `/tokenize`, `/detokenize`), passed through. */
export function registerReadOnlyRoutes(
  app: FastifyInstance,
  deps: PassthroughDeps,
  routes: readonly VllmRoute[] = VLLM_READ_ONLY_ROUTES,
): void {
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.path,
      config: { routeClass: 'read-only' },
      handler: (request, reply) => forward(request, reply, deps, false),
    })
  }
}

/**
 * The operator's `passthrough.allow` entries: any method, any body (kept as bytes under the same limits),
 * forwarded like the read-only routes. `/x/*` in the list is Fastify's wildcard: every path below `/x/`.
 */
export async function registerAllowedRoutes(
  app: FastifyInstance,
  deps: PassthroughDeps,
  allow: readonly string[],
): Promise<void> {
  if (allow.length === 0) return
  // A plugin of its own: its body parser (any content type, as bytes) must not replace the JSON one.
  const plugin = (scope: FastifyInstance, _options: unknown, done: (err?: Error) => void): void => {
    registerRawBodyParser(scope, deps)
    for (const path of allow) {
      scope.route({
        method: ALLOWED_METHODS,
        url: path,
        config: { routeClass: 'allowed' },
        handler: (request, reply) => forward(request, reply, deps, true),
      })
    }
    done()
  }
  await app.register(plugin)
}
