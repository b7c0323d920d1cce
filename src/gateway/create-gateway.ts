import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createAdmissionController, type AdmissionEvent, type AdmissionFault } from '../admission/index.js'
import type { BackendConfig, KvgateConfig } from '../config/index.js'
import { createSystemClock, type Clock } from '../core/index.js'
import { errors } from '../errors/index.js'
import { createIdentityResolver, type IdentityResolver } from '../identity/index.js'
import { createLedger } from '../ledger/index.js'
import { policyFactories, type Policy, type PolicyFactory } from '../policies/index.js'
import { createPredictor, keepPredictorState } from '../predictor/index.js'
import { InFlight } from '../proxy/index.js'
import { createFleet, routerFactories, type FleetBackendState, type RouterFactory } from '../routing/index.js'
import { createStateStore, type SharedAdmission, type StateMetrics, type StateStore } from '../state/index.js'
import { startSim, type SimHandle } from '../sim/index.js'
import { createLogger, createOtlpTracer, createUsageTally, NOOP_REQUEST_TRACER } from '../telemetry/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createBackendPool, diagnoseBackend } from '../upstream/index.js'
import type { AdminRoutes } from './admin-server.js'
import { reportFirstResult } from './backend-report.js'
import { listenBoth, type ListenOptions } from './gateway-listen.js'
import { createGatewayServers } from './gateway-servers.js'
import { shutDownGateway } from './gateway-shutdown.js'
import { createGatewayMetricSet } from './metrics-wiring.js'
import { admissionTuning, planReload, type ReloadPlan } from './reload-plan.js'
import { createGatewaySharedAdmission, registerGatewayStateMetrics } from './shared-state-wiring.js'
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
  /** Routers by name, over the built-in ones (`routing.name` picks among them). */
  routers?: Readonly<Record<string, RouterFactory>>
  /**
   * A state store to share with other gateways (in one process: several gateways on one memory store, as
   * tests and embedders run them); by default the one `state.store` names. The caller closes it.
   */
  stateStore?: StateStore
}

export type { ListenOptions } from './gateway-listen.js'

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
   * Swap identity, users, policy, routing, the admission tuning and `backends[].drain` (queued and in-flight
   * requests stay); `server`, the rest of `backends`, `metricsPoll` and `predictor` need a restart. Returns
   * what changed, and what still differs from what runs until a restart.
   */
  reload(config: KvgateConfig): ReloadPlan
  /**
   * Stop (true) or resume (false) new admissions to a backend; requests running there finish. Until the next
   * reload that changes the backend's `drain`. False when no backend has that name.
   */
  setDraining(backend: string, draining: boolean): boolean
  /** Σ reserved tokens of live reservations (0 when nothing is in flight). */
  ledgerReservedTokens(): number
  queueDepth(): number
  backends(): FleetBackendState[]
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
  // What the restart-only sections run with: a reload compares with these, so restoring a file stops the warning.
  const started = options.config
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
    backendConfigs = [{ url: sim.url, name: SIM_BACKEND_NAME, capacityTokens: null, models: null, drain: false }]
    logger.info({ url: sim.url }, 'emulator ready')
  }
  const backendUrls = new Map(backendConfigs.map((b) => [b.name, b.url]))

  const factories = { ...policyFactories, ...options.policies }
  let identity = createIdentityResolver(config)
  let policy = buildPolicy(config, identity, factories)
  // `state.store: memory` in one gateway is the ledger as it always was; a shared store adds confirmations,
  // a shared room and degraded mode around the same local ledger (src/state, docs/replicas.md).
  const stateStore =
    options.stateStore ??
    (config.state.store === 'memory' ? undefined : await createStateStore(config.state, { clock }))
  let shared: SharedAdmission | undefined
  let stateMetrics: StateMetrics | undefined
  const ledger = createLedger(stateStore === undefined ? {} : { onRelease: (r) => shared?.released(r) })
  const predictor = createPredictor(config.predictor)
  const predictorState =
    config.predictor.stateFile === null
      ? undefined
      : keepPredictorState({
          predictor,
          path: config.predictor.stateFile,
          clock,
          intervalMs: config.predictor.stateSaveIntervalMs,
          onError: (err, during) =>
            logger.warn({ err, file: config.predictor.stateFile }, `predictor state: ${during} failed`),
        })
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
  if (stateStore !== undefined) {
    shared = createGatewaySharedAdmission({
      store: stateStore,
      config: () => config,
      clock,
      ledger,
      backends: () => pool.capacities(),
      logger,
      onWake: () => admission.dispatch(),
      stateMetrics: () => stateMetrics,
    })
  }
  const pool = createBackendPool({
    backends: backendConfigs,
    poll: config.metricsPoll,
    health: config.healthCheck,
    clock,
    reconciler: shared?.reconciler ?? ledger,
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
      fleet.noteUsableChange(state)
      const fields = { backend: state.id, url: state.url, capacityTokens: state.capacityTokens, error: state.lastError }
      if (state.usable) logger.info(fields, 'backend usable')
      else logger.warn({ ...fields, ...diagnoseBackend(state) }, 'backend not usable')
    },
    onFirstResult(state) {
      void reportFirstResult(state, {
        logger,
        dispatcher: pool.dispatcher,
        clock,
        timeoutMs: config.metricsPoll.timeoutMs,
      })
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
  let tuning = admissionTuning(config)
  const fleet = createFleet({
    config,
    backends: backendConfigs,
    pool,
    ledger,
    clock,
    headroomRatio: () => tuning.headroomRatio,
    rules: () => tuning,
    ...(shared === undefined ? {} : { room: shared.room }),
    routers: { ...routerFactories, ...options.routers },
    onRouted: (figures) => routingMetrics.routed(figures),
    onModelsChange(backend, models) {
      logger.info({ backend, models }, 'backend models read')
      // A backend whose models became known may take queued requests now.
      admission.dispatch()
    },
  })
  const admission = createAdmissionController({
    clock,
    policy,
    ledger,
    backends: () => pool.capacities(),
    capacity: fleet.view,
    ...tuning,
    ...(shared === undefined ? {} : { confirmer: shared.confirmer }),
    onEvent: onAdmissionEvent,
    onFault: onAdmissionFault,
    onWaitCheck: (check) => metrics.waitChecked(check),
  })

  const { metrics, routingMetrics } = createGatewayMetricSet({
    clock,
    admission,
    ledger,
    backends: backendConfigs,
    fleet,
    predictor,
    policy: () => policy,
    identity: () => identity,
  })

  const setDraining = (backend: string, on: boolean): boolean => {
    if (!fleet.setDraining(backend, on)) return false
    logger.info({ backend, draining: on }, on ? 'backend draining' : 'backend takes new requests again')
    // Resuming may let queued requests in; draining takes nothing away from what runs.
    if (!on) admission.dispatch()
    return true
  }
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
  const { app, admin } = await createGatewayServers(
    {
      clock,
      logger,
      admission,
      ledger,
      predictor,
      tokens,
      pool,
      fleet,
      metrics,
      inFlight,
      tally,
      tracer,
      usage,
      shared,
      backendUrls,
      current: () => ({ config, identity }),
      shuttingDown: () => shuttingDown,
      setDraining,
    },
    options.adminRoutes ?? [],
  )
  logSecurityWarnings(config, logger)

  stateMetrics = registerGatewayStateMetrics(metrics.registry, shared)
  await shared?.start()
  pool.start()
  fleet.start()
  logger.info(
    {
      backends: backendConfigs.map((b) => ({ name: b.name, url: b.url, drain: b.drain })),
      policy: config.policy.name,
      routing: config.routing.name,
      users: config.users.length,
      emulator: sim !== undefined,
    },
    'kvgate gateway built',
  )

  let closing: Promise<void> | undefined
  let adminAddress: string | undefined
  const close = (): Promise<void> =>
    shutDownGateway({
      graceMs: config.server.shutdownGraceMs,
      clock,
      logger,
      admission,
      inFlight,
      app,
      admin,
      fleet,
      tracer,
      pool,
      predictorState,
      shared,
      ownedStore: options.stateStore === undefined ? stateStore : undefined,
      sim,
      startRefusing: () => {
        shuttingDown = true
      },
    })

  return {
    app,
    admin,
    logger,
    async listen(opts = {}) {
      const urls = await listenBoth(app, admin, config, opts, logger)
      adminAddress = urls.admin
      return urls.url
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
      const plan = planReload(config, next, started)
      const nextIdentity = createIdentityResolver(next)
      // Built before anything is swapped: a policy that refuses its options leaves the old config whole.
      const nextPolicy = plan.policyChanged ? buildPolicy(next, nextIdentity, factories) : undefined
      // Built before anything is swapped: a router refusing its options leaves the old config whole too.
      fleet.configure(next)
      if (plan.tuningChanged) {
        tuning = admissionTuning(next)
        admission.configure(tuning)
      }
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
          routing: next.routing.name,
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
      return plan
    },
    setDraining,
    ledgerReservedTokens: () => ledger.reservedTokens(),
    queueDepth: () => admission.queueDepth(),
    backends: () => fleet.states(),
    config: () => config,
  }
}
