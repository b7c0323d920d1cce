import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import type { AdmissionController } from '../admission/index.js'
import type { KvgateConfig } from '../config/index.js'
import { errors } from '../errors/index.js'
import type { Ledger } from '../ledger/index.js'
import type { InFlight } from '../proxy/index.js'
import { readRequestTarget } from '../proxy/index.js'
import type { Fleet } from '../routing/index.js'
import type { GatewayMetrics } from '../telemetry/index.js'
import type { BackendPool } from '../upstream/index.js'

/** What admin routes may read: the gateway's parts, live. */
export interface AdminContext {
  readonly admission: AdmissionController
  readonly ledger: Ledger
  readonly pool: BackendPool
  /** The model pools and the router over the backends. */
  readonly fleet: Fleet
  readonly inFlight: InFlight
  readonly metrics: GatewayMetrics
  readonly tally: { readonly started: number; readonly ended: number }
  readonly logger: Logger
  /** The config in force now. */
  config(): KvgateConfig
  /** The public `/health`'s answer, with each backend's last error and hint. */
  health(): { readonly status: number; readonly body: unknown }
  /** `Gateway.setDraining`: stop (or resume) new admissions to a backend; false when there is none by that name. */
  setDraining(backend: string, draining: boolean): boolean
  /** The shared state's status (src/state) when a shared store is configured. */
  sharedState(): unknown
}

/**
 * A feature's admin routes (a drain switch, a queue view, a reload trigger): called once while the gateway
 * is built, before it listens, with the admin listener's Fastify instance and the gateway's parts. Routes
 * registered here are behind `admin.token` when one is configured, and never on the public port.
 */
export type AdminRoutes = (admin: FastifyInstance, context: AdminContext) => void | Promise<void>

export const DEBUG_PAGE_DEFAULT = 100 // items of each list per /debug page
export const DEBUG_PAGE_MAX = 1_000 // the most a client may ask for in one page

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/** `?offset=&limit=` of a debug listing, within bounds (a bad value is the default, not an error). */
function page(query: unknown): { offset: number; limit: number } {
  const q = (query ?? {}) as Record<string, unknown>
  const int = (value: unknown, fallback: number): number => {
    const n = typeof value === 'string' && /^[0-9]{1,9}$/.test(value) ? Number(value) : fallback
    return n
  }
  return {
    offset: int(q['offset'], 0),
    limit: Math.min(DEBUG_PAGE_MAX, Math.max(1, int(q['limit'], DEBUG_PAGE_DEFAULT))),
  }
}

function slice<T>(items: readonly T[], offset: number, limit: number) {
  const next = offset + limit < items.length ? offset + limit : null
  return { total: items.length, items: items.slice(offset, offset + limit), next }
}

/**
 * The admin listener (`admin.host`, loopback by default): `/metrics`, `/debug/reservations` (paginated), its
 * own `/health` (with each backend's last error) and `/livez`, and whatever `AdminRoutes` add. Apart from
 * the public listener so that user names, request ids, queue contents and backend URLs never reach a client,
 * and so that an operator's scrape and a client's request do not share a port an ingress could expose. With
 * `admin.token` every route but `/health` and `/livez` needs `Authorization: Bearer <token>` (compared in
 * constant time).
 */
export async function createAdminServer(
  context: AdminContext,
  logger: Logger,
  routes: readonly AdminRoutes[],
): Promise<FastifyInstance> {
  const admin = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    rewriteUrl: (req) => {
      const target = readRequestTarget(req.url ?? '/')
      // A target that cannot be a path matches no route: the 404 handler answers it.
      return target === undefined ? '/%00' : target.encodedPath + target.search
    },
  }) as unknown as FastifyInstance

  admin.addHook('onRequest', (request, reply, done) => {
    const token = context.config().admin.token
    if (token === null || request.url === '/health' || request.url === '/livez') return done()
    const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '')
    if (match?.[1] !== undefined && timingSafeEqual(digest(match[1]), digest(token))) return done()
    const error = match === null ? errors.missingApiKey() : errors.invalidApiKey()
    void reply.code(error.statusCode).send(error.toBody())
  })
  admin.setNotFoundHandler((request, reply) => {
    const error = errors.notFound([`Unknown admin URL: ${request.method} ${request.url.slice(0, 200)}`])
    void reply.code(error.statusCode).send(error.toBody())
  })
  admin.setErrorHandler((err, _request, reply) => {
    logger.error({ err }, 'admin route failed')
    const error = errors.internal([(err as Error).message])
    void reply.code(error.statusCode).send(error.toBody())
  })

  admin.get('/health', async (_request, reply) => {
    const { status, body } = context.health()
    return reply.code(status).send(body)
  })
  admin.get('/livez', async () => ({ status: 'ok' }))
  admin.get('/metrics', async (_request, reply) => {
    const text = await context.metrics.registry.metrics()
    return reply.type(context.metrics.registry.contentType).send(text)
  })
  admin.get('/debug/reservations', async (request) => {
    const { offset, limit } = page(request.query)
    const { ledger, admission, inFlight, tally, fleet } = context
    const reservations = slice(ledger.list(), offset, limit)
    const queued = slice(admission.queued(), offset, limit)
    return {
      totals: {
        reservedTokens: ledger.reservedTokens(),
        outstandingTokens: ledger.outstandingTokens(),
        reservations: ledger.liveCount(),
        queued: admission.queueDepth(),
        forwarding: inFlight.size,
        requestsStarted: tally.started,
        requestsEnded: tally.ended,
      },
      page: {
        offset,
        limit,
        reservations: reservations.total,
        queued: queued.total,
        // The offset of the next page, or null when neither list has more.
        next: reservations.next ?? queued.next,
      },
      reservations: reservations.items,
      ...(context.sharedState() === undefined ? {} : { state: context.sharedState() }),
      queued: queued.items,
      backends: fleet
        .states()
        .map((s) => ({ ...s, metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? s.metricsAgeMs : null })),
      routing: { name: fleet.router().name, ...fleet.router().stats() },
    }
  })
  for (const register of routes) await register(admin, context)
  return admin
}
