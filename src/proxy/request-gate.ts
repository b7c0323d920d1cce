import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import { errors, type KvgateError, type RequestOutcome } from '../errors/index.js'
import type { IdentityResolver, KeyCheck } from '../identity/index.js'
import type { GatewayMetrics } from '../telemetry/index.js'
import { readRequestTarget, type RequestTarget } from './request-target.js'
import type { RouteClass } from './route-table.js'
import { maskSecrets } from './secret-mask.js'

/** What the gate decided for one request, on `request.kvgate` from `onRequest` on. */
export interface GateState {
  readonly id: string
  readonly startMs: number
  /** The normalised target; undefined when the request-target cannot be a route (it was answered 404). */
  readonly target: RequestTarget | undefined
  /** undefined: no route (404). */
  readonly routeClass: RouteClass | undefined
  /** The key, checked before the body is read. */
  key: KeyCheck
  /** A generating route's lifecycle counts and logs the request itself (request-lifecycle.ts). */
  reportedByLifecycle: boolean
  /** The outcome of an answer the route chose itself (a pass-through's error); else read from the status. */
  outcome: RequestOutcome | undefined
  reported: boolean
  /** The gate answered it (503 while shutting down, 401, 404): no route ran. */
  refused: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the request gate in `onRequest`, before any other hook or the body. */
    kvgate: GateState
  }
}

export interface RequestGateDeps {
  readonly clock: Clock
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  current(): { readonly config: KvgateConfig; readonly identity: IdentityResolver }
  shuttingDown(): boolean
  nextRequestId(): string
}

export interface RequestGate {
  /** Fastify's `rewriteUrl`: the router matches the normalised path, the one kvgate decided on. */
  rewriteUrl(req: IncomingMessage): string
  /** The `onRequest` hook and the count of every request the lifecycle does not count; first on the app. */
  install(app: FastifyInstance): void
}

// A refused request's body is not read. Up to this many declared bytes Node reads and drops them so the
// connection can carry the next request; beyond it (or with a body of unknown length) the connection closes.
const DRAIN_REFUSED_BODY_MAX_BYTES = 64 * 1024 // 64 KiB
const SHUTDOWN_RETRY_AFTER_MS = 1_000 // another instance is expected to answer by then

const MAX_LOGGED_PATH_LENGTH = 200 // characters of a refused path in its 404 message and log line

/** A path as it may be shown (in a 404's message, a log line): bounded, and with no configured key in it. */
function shownPath(path: string, config: KvgateConfig): string {
  return maskSecrets(path.slice(0, MAX_LOGGED_PATH_LENGTH * 2), config).slice(0, MAX_LOGGED_PATH_LENGTH)
}

/** The outcome of an answer nobody labelled, from its status. */
function outcomeOfStatus(status: number): RequestOutcome {
  if (status < 400) return 'served'
  if (status === 401) return 'unauthenticated'
  if (status === 404) return 'not_found'
  if (status === 503) return 'rejected_unavailable'
  if (status < 500) return 'invalid_request'
  if (status === 502 || status === 504) return 'upstream_error'
  return 'internal_error'
}

function hasLargeOrUnknownBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true
  const length = Number(req.headers['content-length'] ?? 0)
  return !(length <= DRAIN_REFUSED_BODY_MAX_BYTES)
}

export function shutdownRefusal(): KvgateError {
  // `connection: close` moves a keep-alive client to another instance instead of this closing socket.
  return errors.shuttingDown([], {
    captureStack: false,
    headers: {
      'retry-after': String(SHUTDOWN_RETRY_AFTER_MS / 1000),
      'retry-after-ms': String(SHUTDOWN_RETRY_AFTER_MS),
      connection: 'close',
    },
  })
}

/**
 * The public listener's one routing decision, made once per request before any byte of its body is read:
 * normalise the path (`rewriteUrl`, so Fastify's router matches the path kvgate forwards), then in
 * `onRequest` refuse what needs no body to refuse: 503 while shutting down, 401 without a configured key
 * (every route but kvgate's own `/health`), 404 for a path kvgate does not route. A refusal costs no parsing:
 * the body is never read. Every request is counted in `kvgate_requests_total` exactly once, here or, for a
 * generating route past the gate, by its lifecycle.
 */
export function createRequestGate(deps: RequestGateDeps): RequestGate {
  const targets = new WeakMap<IncomingMessage, RequestTarget>()

  /** Count and log the request once: `finished` when its response went out whole, else the client left. */
  const report = (request: FastifyRequest, reply: FastifyReply, finished: boolean): void => {
    const state = request.kvgate
    if (state.reported || state.reportedByLifecycle) return
    state.reported = true
    const raw = reply.raw
    const outcome = finished ? (state.outcome ?? outcomeOfStatus(raw.statusCode)) : 'cancelled_queued'
    const { config, identity } = deps.current()
    const label = identity.labelFor(state.key.keyUser ?? config.identity.anonymousUser)
    deps.metrics.requestEnded(outcome, label)
    // The access log: a line at info for each pass-through (read-only or allow-listed route), as for every
    // generating request (its lifecycle writes that one). At debug: the gate's refusals (a flood of them
    // must not become a flood of lines; each is counted either way) and kvgate's own probes (/health,
    // /livez, every few seconds from each load balancer).
    const access = !state.refused && (state.routeClass === 'read-only' || state.routeClass === 'allowed')
    deps.logger[access ? 'info' : 'debug'](
      {
        reqId: state.id,
        user: state.key.keyUser,
        method: request.method,
        path: state.target === undefined ? undefined : shownPath(state.target.path, config),
        routeClass: state.routeClass,
        outcome,
        status: raw.statusCode,
        durationMs: Math.round(deps.clock.now() - state.startMs),
      },
      'request answered',
    )
  }

  const refuse = (request: FastifyRequest, reply: FastifyReply, error: KvgateError): void => {
    request.kvgate.outcome = error.outcome
    request.kvgate.refused = true
    const headers: Record<string, string> = { ...error.headers }
    if (hasLargeOrUnknownBody(request.raw)) headers['connection'] = 'close'
    void reply.code(error.statusCode).headers(headers).send(error.toBody())
  }

  return {
    rewriteUrl(req) {
      const url = req.url ?? '/'
      const target = readRequestTarget(url)
      if (target === undefined) return url // matched or not, onRequest answers it 404
      targets.set(req, target)
      return target.encodedPath + target.search
    },

    install(app) {
      app.decorateRequest('kvgate', null as unknown as GateState)
      app.addHook('onRequest', (request, reply, done) => {
        const target = targets.get(request.raw)
        const routeClass =
          target === undefined || request.is404 ? undefined : (request.routeOptions.config.routeClass ?? 'read-only')
        const state: GateState = {
          id: deps.nextRequestId(),
          startMs: deps.clock.now(),
          target,
          routeClass,
          key: { keyUser: undefined },
          reportedByLifecycle: false,
          outcome: undefined,
          reported: false,
          refused: false,
        }
        request.kvgate = state
        reply.header('x-kvgate-request-id', state.id)
        reply.raw.once('finish', () => report(request, reply, true))
        reply.raw.once('close', () => report(request, reply, false))

        if (deps.shuttingDown()) return refuse(request, reply, shutdownRefusal())
        if (routeClass !== 'public') {
          try {
            state.key = deps.current().identity.authenticate(request.headers.authorization)
          } catch (err) {
            return refuse(request, reply, err as KvgateError)
          }
        }
        if (routeClass === undefined) {
          const path = shownPath(target?.path ?? request.url, deps.current().config)
          return refuse(request, reply, errors.notFound([`Unknown request URL: ${request.method} ${path}`]))
        }
        done()
      })
      // Reached only when onRequest let a request through that no route matched (it never does): a 404 still.
      app.setNotFoundHandler((request, reply) => {
        refuse(request, reply, errors.notFound([`Unknown request URL: ${request.method}`]))
      })
    },
  }
}
