import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { AdmissionController } from '../admission/index.js'
import type { KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import type { IdentityResolver } from '../identity/index.js'
import type { Ledger } from '../ledger/index.js'
import type { Predictor } from '../predictor/index.js'
import type { InFlight } from '../proxy/index.js'
import type { Fleet } from '../routing/index.js'
import type { SharedAdmission } from '../state/index.js'
import type { GatewayMetrics, RequestTracer, UsageTally } from '../telemetry/index.js'
import type { TokenCounter } from '../tokens/index.js'
import type { BackendPool } from '../upstream/index.js'
import { type AdminContext, type AdminRoutes, createAdminServer } from './admin-server.js'
import { readiness } from './backend-report.js'
import { debugQueueRoute, debugUsageRoute } from './debug-routes.js'
import { registerDrainRoutes } from './drain-routes.js'
import { createPublicServer, type PublicServerDeps } from './public-server.js'

/** The gateway's parts the two listeners read, live: a reload swaps what `current()` returns. */
export interface ServerParts {
  readonly clock: Clock
  readonly logger: Logger
  readonly admission: AdmissionController
  readonly ledger: Ledger
  readonly predictor: Predictor
  readonly tokens: TokenCounter
  readonly pool: BackendPool
  readonly fleet: Fleet
  readonly metrics: GatewayMetrics
  readonly inFlight: InFlight
  readonly tally: { started: number; ended: number }
  readonly tracer: RequestTracer
  readonly usage: UsageTally
  readonly shared: SharedAdmission | undefined
  readonly backendUrls: ReadonlyMap<string, string>
  /** The config and identity in force now. */
  current(): { readonly config: KvgateConfig; readonly identity: IdentityResolver }
  shuttingDown(): boolean
  setDraining(backend: string, draining: boolean): boolean
}

/**
 * The public listener (the OpenAI API, through admission) and the admin listener (`/metrics`, `/debug/*`, the
 * drain switch and the embedder's `adminRoutes`), with the readiness both answer: the public `/health`
 * briefly, the admin one with each backend's last error and hint.
 */
export async function createGatewayServers(
  parts: ServerParts,
  adminRoutes: readonly AdminRoutes[],
): Promise<{ readonly app: FastifyInstance; readonly admin: FastifyInstance }> {
  const { clock, logger, admission, pool, fleet, shared } = parts
  let requestSeq = 0
  const requestPrefix = clock.wallNow().toString(36)
  const health = (detailed = false) => {
    const state = shared?.status()
    return readiness(
      fleet.states(),
      parts.shuttingDown(),
      detailed,
      state === undefined
        ? undefined
        : { store: state.store, up: state.up, degraded: state.degraded, replicas: state.replicas },
    )
  }
  const publicDeps: PublicServerDeps = {
    clock,
    admission,
    predictor: parts.predictor,
    tokens: parts.tokens,
    dispatcher: pool.dispatcher,
    metrics: parts.metrics,
    logger,
    current: parts.current,
    backendUrl: (id: string) => parts.backendUrls.get(id),
    tokenizeBaseUrl: (model) => fleet.pickUrl(model),
    pools: fleet,
    onUpstreamFailure: (backendId: string) => pool.checkHealthSoon(backendId),
    nextRequestId: () => `kvg-${requestPrefix}-${++requestSeq}`,
    inFlight: parts.inFlight,
    tally: parts.tally,
    tracer: parts.tracer,
    usage: parts.usage,
    shuttingDown: parts.shuttingDown,
    pickUpstream: () => fleet.pickUrl(),
    listModels: () => fleet.listModels(),
    health: () => health(false),
  }
  const app = await createPublicServer(publicDeps, logger)
  const adminContext: AdminContext = {
    admission,
    ledger: parts.ledger,
    pool,
    fleet,
    inFlight: parts.inFlight,
    metrics: parts.metrics,
    tally: parts.tally,
    logger,
    config: () => parts.current().config,
    health: () => health(true),
    setDraining: parts.setDraining,
    sharedState: () => shared?.status(),
  }
  const admin = await createAdminServer(adminContext, logger, [
    registerDrainRoutes,
    debugQueueRoute,
    debugUsageRoute(parts.usage, clock),
    ...adminRoutes,
  ])
  return { app, admin }
}
