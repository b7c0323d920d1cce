import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import {
  createAdmissionController,
  createMostRoomView,
  type AdmissionEvent,
  type AdmissionFault,
} from '../admission/index.js'
import type { BackendConfig, KvgateConfig } from '../config/index.js'
import { createSystemClock, type Clock, type TimerHandle } from '../core/index.js'
import { errors } from '../errors/index.js'
import { createIdentityResolver, OTHER_USER_LABEL, type IdentityResolver } from '../identity/index.js'
import { createLedger } from '../ledger/index.js'
import { policyFactories, VTC_DEFAULTS, type Policy, type PolicyFactory, type VtcOptions } from '../policies/index.js'
import { createPredictor } from '../predictor/index.js'
import {
  createSharedAdmission,
  createStateStore,
  registerStateMetrics,
  type SharedAdmission,
  type StateMetrics,
  type StateStore,
} from '../state/index.js'
import {
  COMPLETION_ROUTES,
  fromFastifyError,
  InFlight,
  registerGeneratingRoute,
  registerPassthrough,
  type ProxyDeps,
} from '../proxy/index.js'
import { startSim, type SimHandle } from '../sim/index.js'
import { createGatewayMetrics, createLogger } from '../telemetry/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createBackendPool, type BackendState } from '../upstream/index.js'
import { admissionTuning, planReload } from './reload-plan.js'

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
   * A state store to share with other gateways (in one process: several gateways on one memory store, as
   * tests and embedders run them); by default the one `state.store` names. The caller closes it.
   */
  stateStore?: StateStore
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly logger: Logger
  /** Start accepting; resolves to the URL (`http://127.0.0.1:PORT`). Defaults come from `server`. */
  listen(opts?: { port?: number; host?: string }): Promise<string>
  /** Graceful: refuse new work, 503 to the queue, let streams finish within `shutdownGraceMs`, then abort. */
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

const BODY_LIMIT_BYTES = 32 * 1024 * 1024 // 32 MiB: long-context prompts are large JSON
const SIM_BACKEND_NAME = 'sim'

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
  // `state.store: memory` in one gateway is the ledger as it always was; a shared store adds confirmations,
  // a shared room and degraded mode around the same local ledger (src/state, docs/replicas.md).
  const stateStore =
    options.stateStore ??
    (config.state.store === 'memory' ? undefined : await createStateStore(config.state, { clock }))
  let shared: SharedAdmission | undefined
  let stateMetrics: StateMetrics | undefined
  const ledger = createLedger(stateStore === undefined ? {} : { onRelease: (r) => shared?.released(r) })
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
  if (stateStore !== undefined) {
    shared = createSharedAdmission({
      store: stateStore,
      clock,
      replicaId: config.state.replicaId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
      leaseMs: config.state.leaseMs,
      heartbeatMs: config.state.heartbeatMs,
      expectedReplicas: config.state.expectedReplicas,
      ledger,
      backends: () => pool.capacities(),
      headroomRatio: () => config.admission.headroomRatio,
      fairPrices: () =>
        config.policy.name === 'vtc'
          ? { ...VTC_DEFAULTS, ...(config.policy.options as Partial<VtcOptions>) }
          : undefined,
      onWake: () => admission.dispatch(),
      onModeChange(degraded, reason) {
        if (degraded) logger.warn({ reason }, 'shared state unreachable: degraded mode, admitting on a 1/N share')
        else logger.info({ store: stateStore.kind }, 'shared state in use')
      },
      onConfirmation: (result, seconds) => stateMetrics?.confirmation(result, seconds),
    })
  }
  const pool = createBackendPool({
    backends: backendConfigs,
    poll: config.metricsPoll,
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
      const fields = { backend: state.id, url: state.url, capacityTokens: state.capacityTokens, error: state.lastError }
      if (state.usable) logger.info(fields, 'backend usable')
      else logger.warn(fields, 'backend not usable: metrics stale or failing')
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
    ...(shared === undefined
      ? {}
      : {
          confirmer: shared.confirmer,
          capacity: createMostRoomView({
            backends: () => pool.capacities(),
            ledger,
            headroomRatio: () => config.admission.headroomRatio,
            room: shared.room,
          }),
        }),
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

  // Typed as the default instance: the pino generic adds nothing callers use and would leak into every type.
  const app = Fastify({
    loggerInstance: logger,
    // One line per request is written by the request lifecycle; Fastify's own pair per request would double it.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // `/v1/chat/completions/` must reach admission too, not slip through the pass-through proxy unadmitted.
    routerOptions: { ignoreTrailingSlash: true },
    // Shutdown's 503 is sent by the onRequest hook below, in OpenAI's error shape.
    return503OnClosing: false,
  }) as unknown as FastifyInstance

  let shuttingDown = false
  app.addHook('onRequest', async (_request, reply) => {
    if (!shuttingDown) return
    const error = errors.shuttingDown()
    // `connection: close` so a keep-alive client moves to another instance instead of reusing this socket.
    return reply.code(error.statusCode).header('connection', 'close').send(error.toBody())
  })

  // Fastify's own refusals (bad JSON, wrong content type, body too large) in OpenAI's error shape. The
  // generating routes have their own handler, which ends the request's lifecycle (counted, logged once).
  app.setErrorHandler((err: FastifyError, _request, reply) => {
    const error = fromFastifyError(err)
    if (error.outcome === 'internal_error') logger.error({ err }, 'unhandled error')
    return reply.code(error.statusCode).send(error.toBody())
  })

  let requestSeq = 0
  const requestPrefix = clock.wallNow().toString(36)
  const proxyDeps: ProxyDeps = {
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
    nextRequestId: () => `kvg-${requestPrefix}-${++requestSeq}`,
    inFlight,
    tally,
  }
  for (const route of COMPLETION_ROUTES) registerGeneratingRoute(app, proxyDeps, route)

  app.get('/health', async (_request, reply) => {
    const states = pool.states()
    const usable = states.filter((s) => s.usable).length
    const state = shared?.status()
    const body = {
      status: usable === 0 ? 'unavailable' : state?.degraded === true ? 'degraded' : 'ok',
      backends: states.map((s) => ({
        name: s.id,
        usable: s.usable,
        up: s.up,
        metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? Math.round(s.metricsAgeMs) : null,
      })),
      ...(state === undefined
        ? {}
        : { state: { store: state.store, up: state.up, degraded: state.degraded, replicas: state.replicas } }),
    }
    return reply.code(usable > 0 ? 200 : 503).send(body)
  })
  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })
  app.get('/debug/reservations', async () => ({
    totals: {
      reservedTokens: ledger.reservedTokens(),
      outstandingTokens: ledger.outstandingTokens(),
      reservations: ledger.liveCount(),
      queued: admission.queueDepth(),
      forwarding: inFlight.size,
      requestsStarted: tally.started,
      requestsEnded: tally.ended,
    },
    reservations: ledger.list(),
    ...(shared === undefined ? {} : { state: shared.status() }),
    queued: admission.queued(),
    backends: pool
      .states()
      .map((s) => ({ ...s, metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? s.metricsAgeMs : null })),
  }))

  await registerPassthrough(app, {
    pickUpstream: () => pool.pickForPassthrough()?.url,
    current: () => ({ config }),
  })

  // The state metrics on every gateway, so dashboards and alerts read alike whatever the store: one process's
  // memory is always up, never degraded, one replica.
  const soloStatus = { store: 'memory', up: true, degraded: false, replicas: 1, lastError: undefined, resyncs: 0 }
  stateMetrics = registerStateMetrics(metrics.registry, shared?.status ?? (() => soloStatus))
  await shared?.start()
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
  const close = async (): Promise<void> => {
    const graceMs = config.server.shutdownGraceMs
    logger.info({ forwarding: inFlight.size, queued: admission.queueDepth(), graceMs }, 'shutting down')
    // Queued requests get 503 shutting_down now; new connections are refused, and requests arriving on open
    // keep-alive connections get 503, from here on.
    shuttingDown = true
    admission.close()
    const serverClosed = app.close()
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
    app.server.closeAllConnections()
    await serverClosed
    await pool.close()
    await shared?.close()
    // A store the gateway opened is its to close; one passed in is shared with others.
    if (options.stateStore === undefined) await stateStore?.close()
    await sim?.close()
    logger.info('kvgate stopped')
  }

  return {
    app,
    logger,
    async listen(opts = {}) {
      const url = await app.listen({ port: opts.port ?? config.server.port, host: opts.host ?? config.server.host })
      const address = app.server.address()
      const port = typeof address === 'object' && address !== null ? address.port : config.server.port
      const host = opts.host ?? config.server.host
      const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
      logger.info({ url, port }, 'kvgate listening')
      return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`
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
