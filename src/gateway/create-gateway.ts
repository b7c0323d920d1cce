import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createAdmissionController, type AdmissionEvent, type AdmissionFault } from '../admission/index.js'
import type { BackendConfig, KvgateConfig } from '../config/index.js'
import { createSystemClock, type Clock, type TimerHandle } from '../core/index.js'
import { errors } from '../errors/index.js'
import { createIdentityResolver, OTHER_USER_LABEL, type IdentityResolver } from '../identity/index.js'
import { createLedger } from '../ledger/index.js'
import { policyFactories, type Policy, type PolicyFactory } from '../policies/index.js'
import { createPredictor } from '../predictor/index.js'
import { InFlight } from '../proxy/index.js'
import { startSim, type SimHandle } from '../sim/index.js'
import {
  createGatewayMetrics,
  createLogger,
  createOtlpTracer,
  createUsageTally,
  NOOP_REQUEST_TRACER,
} from '../telemetry/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createBackendPool, type BackendState } from '../upstream/index.js'
import { type AdminContext, type AdminRoutes, createAdminServer } from './admin-server.js'
import { debugQueueRoute, debugUsageRoute } from './debug-routes.js'
import { createPublicServer, type PublicServerDeps } from './public-server.js'
import { admissionTuning, planReload } from './reload-plan.js'
import { logSecurityWarnings } from './startup-warnings.js'

export interface GatewayOptions {
  config: KvgateConfig
  clock?: Clock
  /** A pino logger to use, or false for none; by default a new one at `telemetry.logLevel`. */
  logger?: Logger | false
  /**
   * Policies by name, over the built-in ones (`policy.name` picks among them): an embedder's own policy, or
   * a test's. The admission queue contains their exceptions (500 `internal_error`, never a leak).
   */
  policies?: Readonly<Record<string, PolicyFactory>>
  /**
   * Routes of later features on the admin listener (a drain switch, a queue view, a reload trigger), each
   * called once with the admin Fastify instance and the gateway's parts before the gateway listens. The
   * instance is also `gateway.admin`, for routes added after `createGateway` and before `listen`.
   */
  adminRoutes?: readonly AdminRoutes[]
}

export interface ListenOptions {
  port?: number
  host?: string
  /** The admin listener's port; by default `admin.port`, or an ephemeral one when the public port is 0. */
  adminPort?: number
  adminHost?: string
}

export interface Gateway {
  /** The public listener: the OpenAI API, through admission. */
  readonly app: FastifyInstance
  /** The admin listener: `/metrics`, `/debug/*`, admin routes. Add routes to it before `listen()`. */
  readonly admin: FastifyInstance
  readonly logger: Logger
  /**
   * Start accepting on both listeners; resolves to the public URL (`http://127.0.0.1:PORT`). Defaults come
   * from `server` and `admin`.
   */
  listen(opts?: ListenOptions): Promise<string>
  /** The admin listener's URL, once listening. */
  adminUrl(): string
  /**
   * Graceful: from the call on, every new request (on a new connection or a kept-alive one) gets 503
   * `shutting_down` with `retry-after` and `connection: close`; the queue gets 503; streams may finish within
   * `shutdownGraceMs`, then are aborted; then the listeners close.
   */
  close(): Promise<void>
  /**
   * Swap identity, users, policy and the admission tuning (queued and in-flight requests stay); `server`,
   * `backends`, `metricsPoll` and `predictor` need a restart.
   */
  reload(config: KvgateConfig): void
  /** Σ reserved tokens of live reservations (0 when nothing is in flight). */
  ledgerReservedTokens(): number
  queueDepth(): number
  backends(): BackendState[]
  /** The config in force now. */
  config(): KvgateConfig
}

const SIM_BACKEND_NAME = 'sim'

/**
 * Log paths that may hold a credential, masked by pino whatever logs them (defence in depth: kvgate's own
 * lines never include headers, and a refused config masks keys itself).
 */
const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers["api-key"]',
  'req.headers["x-api-key"]',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers["api-key"]',
  'headers["x-api-key"]',
  'headers["proxy-authorization"]',
]

const reachable = (host: string): string => {
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
  return h.includes(':') ? `[${h}]` : h
}

function buildPolicy(
  config: KvgateConfig,
  identity: IdentityResolver,
  factories: Readonly<Record<string, PolicyFactory>>,
): Policy {
  const factory = factories[config.policy.name]
  // parseConfig already refused unknown names; this guards a config built by hand.
  if (factory === undefined) throw errors.invalidConfig([`policy.name: unknown policy "${config.policy.name}"`])
  return factory({ users: identity.users(), options: config.policy.options })
}

/**
 * Build a gateway: the backend pool and its poller, the ledger, predictor, policy and admission queue, the
 * Fastify routes, metrics and logs. With no backend configured it first starts the built-in emulator
 * in-process and says so in its first log line, so a bare `kvgate serve` is a working OpenAI endpoint.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  let config = options.config
  const clock = options.clock ?? createSystemClock()
  const logger = createLogger({
    level: config.telemetry.logLevel,
    redact: REDACTED_LOG_PATHS,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  })

  let sim: SimHandle | undefined
  let backendConfigs: readonly BackendConfig[] = config.backends
  if (backendConfigs.length === 0) {
    logger.info('no backend configured: starting the built-in vLLM emulator (kvgate sim) in-process')
    sim = await startSim({ port: 0, host: '127.0.0.1', logger: false })
    backendConfigs = [{ url: sim.url, name: SIM_BACKEND_NAME, capacityTokens: null }]
    logger.info({ url: sim.url }, 'emulator ready')
  }
  const backendUrls = new Map(backendConfigs.map((b) => [b.name, b.url]))

  const factories = { ...policyFactories, ...options.policies }
  let identity = createIdentityResolver(config)
  let policy = buildPolicy(config, identity, factories)
  const ledger = createLedger()
  const predictor = createPredictor(config.predictor)
  const tokens = createWordPieceTokenCounter()
  const inFlight = new InFlight()
  const tally = { started: 0, ended: 0 }

  // A policy's or listener's exception, contained by the admission queue: logged with its stack and counted
  // (`metrics` is built below; faults only happen once requests and polls run).
  const onAdmissionFault = (fault: AdmissionFault): void => {
    logger.error(
      { err: fault.error, component: fault.component, operation: fault.operation, reqId: fault.requestId },
      `admission: ${fault.component} ${fault.operation} threw`,
    )
    metrics.internalError(fault.component)
  }
  const pool = createBackendPool({
    backends: backendConfigs,
    poll: config.metricsPoll,
    health: config.healthCheck,
    clock,
    reconciler: ledger,
    onPollRound() {
      // Adaptive policies re-divide what was served, and new usage figures may have made room. A policy bug
      // must not stop the poller nor the dispatch: it is a contained fault like any other of the policy's.
      try {
        policy.onTick(clock.now(), { servedTokensPerMinute: pool.servedTokensPerMinute() })
      } catch (error) {
        onAdmissionFault({ component: 'policy', operation: 'onTick', error })
      }
      admission.dispatch()
    },
    onUsableChange(state) {
      const fields = { backend: state.id, url: state.url, capacityTokens: state.capacityTokens, error: state.lastError }
      if (state.usable) logger.info(fields, 'backend usable')
      else logger.warn(fields, 'backend not usable: metrics stale, failing or not believable, or engine unhealthy')
    },
  })

  const onAdmissionEvent = (event: AdmissionEvent): void => {
    if (event.kind === 'rejected' || event.kind === 'cancelled') {
      logger.debug(
        { reqId: event.id, outcome: event.outcome, reason: event.reason, waitedMs: event.waitedMs },
        'not admitted',
      )
    }
  }
  const admission = createAdmissionController({
    clock,
    policy,
    ledger,
    backends: () => pool.capacities(),
    ...admissionTuning(config),
    onEvent: onAdmissionEvent,
    onFault: onAdmissionFault,
  })

  const metrics = createGatewayMetrics({
    queueDepth: () => admission.queueDepth(),
    ledger: () =>
      backendConfigs.map((b) => ({
        backend: b.name,
        reservedTokens: ledger.outstandingTokens(b.name),
        reservations: ledger.liveCount(b.name),
      })),
    backends: () => pool.states(),
    predictor: () =>
      predictor.stats().map((s) => ({
        model: s.model,
        outputTokens: s.quantileTokens,
        coverageRatio: Number.isNaN(s.coverageRatio) ? undefined : s.coverageRatio,
        overReservationRatio: Number.isNaN(s.overReservationRatio) ? undefined : s.overReservationRatio,
      })),
    policyUsers: () =>
      policy
        .userStates(clock.now())
        .map((s) => ({
          user: identity.labelFor(s.user),
          counter: s.counter,
          quotaTokensPerMinute: s.quotaTokensPerMinute,
        }))
        // Unlabelled users would all write the one `other` series; leave it out rather than show one at random.
        .filter((s) => s.user !== OTHER_USER_LABEL),
  })

  // Built from the config at start (a reload keeps it): its own provider, flushed when the gateway closes.
  const tracer = config.tracing.enabled ? createOtlpTracer(config.tracing) : NOOP_REQUEST_TRACER
  if (config.tracing.enabled) {
    logger.info(
      { endpoint: config.tracing.endpoint, sampleRatio: config.tracing.sampleRatio },
      'tracing: exporting OTLP spans',
    )
  }

  const usage = createUsageTally(clock)

  let shuttingDown = false
  let requestSeq = 0
  const requestPrefix = clock.wallNow().toString(36)
  const health = (): { status: number; body: unknown } => {
    const states = pool.states()
    const usable = states.filter((s) => s.usable).length
    const up = usable > 0 && !shuttingDown
    return {
      status: up ? 200 : 503,
      body: {
        status: shuttingDown ? 'shutting_down' : up ? 'ok' : 'unavailable',
        backends: states.map((s) => ({
          name: s.id,
          usable: s.usable,
          up: s.up,
          healthy: s.healthy,
          metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? Math.round(s.metricsAgeMs) : null,
        })),
      },
    }
  }
  const publicDeps: PublicServerDeps = {
    clock,
    admission,
    predictor,
    tokens,
    dispatcher: pool.dispatcher,
    metrics,
    logger,
    current: () => ({ config, identity }),
    backendUrl: (id: string) => backendUrls.get(id),
    tokenizeBaseUrl: () => pool.pickForPassthrough()?.url,
    onUpstreamFailure: (backendId: string) => pool.checkHealthSoon(backendId),
    nextRequestId: () => `kvg-${requestPrefix}-${++requestSeq}`,
    inFlight,
    tally,
    tracer,
    usage,
    shuttingDown: () => shuttingDown,
    pickUpstream: () => pool.pickForPassthrough()?.url,
    health,
  }
  const app = await createPublicServer(publicDeps, logger)
  const adminContext: AdminContext = {
    admission,
    ledger,
    pool,
    inFlight,
    metrics,
    tally,
    logger,
    config: () => config,
    health,
  }
  const admin = await createAdminServer(adminContext, logger, [
    debugQueueRoute,
    debugUsageRoute(usage, clock),
    ...(options.adminRoutes ?? []),
  ])
  logSecurityWarnings(config, logger)

  pool.start()
  logger.info(
    {
      backends: backendConfigs.map((b) => ({ name: b.name, url: b.url })),
      policy: config.policy.name,
      users: config.users.length,
      emulator: sim !== undefined,
    },
    'kvgate gateway built',
  )

  let closing: Promise<void> | undefined
  let adminAddress: string | undefined
  const close = async (): Promise<void> => {
    const graceMs = config.server.shutdownGraceMs
    logger.info({ forwarding: inFlight.size, queued: admission.queueDepth(), graceMs }, 'shutting down')
    // Queued requests get 503 shutting_down now, and so does every new request from here on (the gate):
    // the listener stays open while streams finish, so a request arriving now, on a new connection or a
    // kept-alive one, or sent but not yet read, is answered 503 with `connection: close`, not reset.
    shuttingDown = true
    admission.close()
    // Wait for the streams being forwarded, not for connections: a client's idle or half-sent keep-alive
    // connection must not hold shutdown for the whole grace period. An event and a clock timer, not a poll.
    let graceTimer: TimerHandle | undefined
    const graceOver = new Promise<false>((resolve) => {
      graceTimer = clock.setTimeout(() => resolve(false), graceMs)
    })
    const drained = await Promise.race([inFlight.whenEmpty().then(() => true as const), graceOver])
    if (graceTimer !== undefined) clock.clearTimeout(graceTimer)
    if (!drained) {
      logger.warn({ forwarding: inFlight.size }, 'grace period over: aborting streams still running')
      inFlight.abortAll(errors.shuttingDown())
      // The aborted streams write their error event, release and end on the next turns of the event loop.
      await inFlight.whenEmpty()
    }
    // Only now does the listener close: idle kept-alive connections with it, then whatever is left.
    const serverClosed = app.close()
    app.server.closeAllConnections()
    await serverClosed
    await admin.close()
    // Every request has been reported by now: its span is in the batch, which this sends.
    await tracer.shutdown()
    await pool.close()
    await sim?.close()
    logger.info('kvgate stopped')
  }

  return {
    app,
    admin,
    logger,
    async listen(opts = {}) {
      const port = opts.port ?? config.server.port
      const host = opts.host ?? config.server.host
      const adminHost = opts.adminHost ?? config.admin.host
      // An ephemeral public port (tests, several gateways in one process) takes an ephemeral admin port too.
      const adminPort = opts.adminPort ?? (port === 0 ? 0 : config.admin.port)
      const url = await app.listen({ port, host })
      try {
        await admin.listen({ port: adminPort, host: adminHost })
      } catch (err) {
        await app.close()
        throw err
      }
      const portOf = (server: FastifyInstance, fallback: number): number => {
        const address = server.server.address()
        return typeof address === 'object' && address !== null ? address.port : fallback
      }
      adminAddress = `http://${reachable(adminHost)}:${portOf(admin, adminPort)}`
      logger.info({ url, port: portOf(app, port), admin: adminAddress }, 'kvgate listening')
      return `http://${reachable(host)}:${portOf(app, port)}`
    },
    adminUrl() {
      if (adminAddress === undefined) throw errors.internal(['the gateway is not listening yet'])
      return adminAddress
    },
    close() {
      closing ??= close()
      return closing
    },
    reload(next) {
      const plan = planReload(config, next)
      const nextIdentity = createIdentityResolver(next)
      // Built before anything is swapped: a policy that refuses its options leaves the old config whole.
      const nextPolicy = plan.policyChanged ? buildPolicy(next, nextIdentity, factories) : undefined
      if (plan.tuningChanged) admission.configure(admissionTuning(next))
      if (nextPolicy !== undefined) {
        admission.setPolicy(nextPolicy)
        policy = nextPolicy
      }
      identity = nextIdentity
      config = next
      // Only a logger kvgate made follows telemetry.logLevel; a caller's (or a disabled one) stays as given.
      if (options.logger === undefined) logger.level = next.telemetry.logLevel
      logger.info(
        {
          policy: next.policy.name,
          policyRebuilt: plan.policyChanged,
          admissionRetuned: plan.tuningChanged,
          users: next.users.length,
          queued: admission.queueDepth(),
        },
        'config reloaded',
      )
      if (plan.needsRestart.length > 0) {
        logger.warn(
          { sections: plan.needsRestart },
          'config reloaded, but these sections only take effect after a restart',
        )
      }
    },
    ledgerReservedTokens: () => ledger.reservedTokens(),
    queueDepth: () => admission.queueDepth(),
    backends: () => pool.states(),
    config: () => config,
  }
}
