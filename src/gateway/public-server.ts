import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import type { KvgateConfig } from '../config/index.js'
import { errors, type KvgateError } from '../errors/index.js'
import type { IdentityResolver } from '../identity/index.js'
import {
  createRequestGate,
  fromFastifyError,
  GENERATING_ROUTES,
  installRequestValidation,
  type ProxyDeps,
  registerAllowedRoutes,
  registerGeneratingRoute,
  registerJsonBodyParser,
  registerModelsRoute,
  registerReadOnlyRoutes,
} from '../proxy/index.js'
import { VLLM_READ_ONLY_ROUTES } from '../core/index.js'

export interface PublicServerDeps extends ProxyDeps {
  /** The config and identity in force now. */
  current(): { readonly config: KvgateConfig; readonly identity: IdentityResolver }
  shuttingDown(): boolean
  nextRequestId(): string
  /** A usable backend for the routes that skip admission. */
  pickUpstream(): string | undefined
  /** `GET /v1/models`: the union of the model pools (one backend would list only its own). */
  listModels(): { object: 'list'; data: readonly Record<string, unknown>[] }
  /** kvgate's own `/health` (readiness): 200 while a backend is usable, else 503, with each backend's state. */
  health(): { readonly status: number; readonly body: unknown }
}

// Node checks every connection for its head and request timeouts this often (its default is 30 s, which
// would let a slow head hold its socket half a minute past `limits.headersTimeoutMs`).
const CONNECTIONS_CHECK_INTERVAL_MS = 1_000
// A slack on Node's own whole-request timeout, a backstop behind kvgate's body timeout on the clock.
const REQUEST_TIMEOUT_SLACK_MS = 5_000

/** An OpenAI-shaped answer written straight to a socket Node could not parse a request from. */
function writeRaw(socket: Socket, error: KvgateError): void {
  const body = JSON.stringify(error.toBody())
  socket.end(
    `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode] ?? ''}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
}

/**
 * The public listener: the request gate first (routing on the normalised path, 503/401/404 before any body
 * is read), the bounded JSON parser and the route schemas, every generating route through admission, the
 * read-only and allow-listed routes passed through, and kvgate's own `/health`. `/metrics`, `/debug/*` and
 * admin routes are not here (admin-server.ts). Node's own refusals (a head it cannot parse, one too large,
 * one too slow) are answered in OpenAI's shape too, and counted.
 */
export async function createPublicServer(deps: PublicServerDeps, logger: Logger): Promise<FastifyInstance> {
  const { limits } = deps.current().config
  const gate = createRequestGate(deps)
  const anonymousLabel = (): string => {
    const { config, identity } = deps.current()
    return identity.labelFor(config.identity.anonymousUser)
  }
  // Typed as the default instance: the pino generic adds nothing callers use and would leak into every type.
  const app = Fastify({
    loggerInstance: logger,
    // One line per request is written by the lifecycle or the gate; Fastify's own pair would double it.
    logController: new LogController({ disableRequestLogging: true }),
    rewriteUrl: gate.rewriteUrl,
    // The body parsers enforce `limits.bodyLimitBytes` themselves, while the body arrives.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    // Shutdown's 503 is the gate's, in OpenAI's error shape, with retry-after and `connection: close`.
    return503OnClosing: false,
    requestTimeout: limits.headersTimeoutMs + limits.bodyTimeoutMs + REQUEST_TIMEOUT_SLACK_MS,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy()
        return
      }
      const error =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? errors.headersTooLarge()
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? errors.requestTimeout([deps.current().config.limits.headersTimeoutMs])
            : errors.badHttpRequest()
      writeRaw(socket, error)
      deps.metrics.requestEnded(error.outcome, anonymousLabel())
    },
  }) as unknown as FastifyInstance

  gate.install(app)
  installRequestValidation(app)
  registerJsonBodyParser(app, { clock: deps.clock, limits: () => deps.current().config.limits })

  // Refusals outside a generating route's lifecycle (a pass-through's body, Fastify's own) in OpenAI's shape.
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const error = fromFastifyError(err)
    if (error.outcome === 'internal_error') logger.error({ err }, 'unhandled error')
    request.kvgate.outcome = error.outcome
    return reply.code(error.statusCode).headers(error.headers).send(error.toBody())
  })

  for (const route of GENERATING_ROUTES) registerGeneratingRoute(app, deps, route)
  // Readiness: 503 while no backend is usable (a load balancer sends traffic elsewhere).
  app.get('/health', { config: { routeClass: 'public' } }, async (_request, reply) => {
    const { status, body } = deps.health()
    return reply.code(status).send(body)
  })
  // Liveness: the process answers. A dead backend is no reason to restart kvgate.
  app.get('/livez', { config: { routeClass: 'public' } }, async () => ({ status: 'ok' }))
  const passthrough = {
    clock: deps.clock,
    dispatcher: deps.dispatcher,
    pickUpstream: deps.pickUpstream,
    current: deps.current,
    limits: () => deps.current().config.limits,
  }
  registerModelsRoute(app, { listModels: deps.listModels })
  registerReadOnlyRoutes(
    app,
    passthrough,
    VLLM_READ_ONLY_ROUTES.filter((route) => route.path !== '/v1/models'),
  )
  await registerAllowedRoutes(app, passthrough, deps.current().config.passthrough.allow)
  return app
}
