import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { createAdmissionController, type AdmissionEvent } from '../admission/index.js'
import type { BackendConfig, KvgateConfig } from '../config/index.js'
import { createSystemClock, type Clock } from '../core/index.js'
import { errors, toKvgateError } from '../errors/index.js'
import { createIdentityResolver, OTHER_USER_LABEL, type IdentityResolver } from '../identity/index.js'
import { createLedger } from '../ledger/index.js'
import { policyFactories, type Policy } from '../policies/index.js'
import { createPredictor } from '../predictor/index.js'
import { createCompletionHandler, registerPassthrough } from '../proxy/index.js'
import { startSim, type SimHandle } from '../sim/index.js'
import { createGatewayMetrics, createLogger } from '../telemetry/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createBackendPool, type BackendState } from '../upstream/index.js'

export interface GatewayOptions {
  config: KvgateConfig
  clock?: Clock
  /** A pino logger to use, or false for none; by default a new one at `telemetry.logLevel`. */
  logger?: Logger | false
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly logger: Logger
  /** Start accepting; resolves to the URL (`http://127.0.0.1:PORT`). Defaults come from `server`. */
  listen(opts?: { port?: number; host?: string }): Promise<string>
  /** Graceful: refuse new work, 503 to the queue, let streams finish within `shutdownGraceMs`, then abort. */
  close(): Promise<void>
  /** Swap identity, users and policy (queued and in-flight requests stay); other sections need a restart. */
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
const SHUTDOWN_CHECK_MS = 10 // how often shutdown looks whether the last stream has ended
const COMPLETION_PATHS = new Set(['/v1/chat/completions', '/v1/completions'])

// Sections a reload cannot change in a running gateway (sockets, pollers and queues are built from them).
const RESTART_ONLY_SECTIONS = ['server', 'backends', 'metricsPoll', 'predictor'] as const
// The admission queue's own tuning, fixed when it is built; the deadline fields are read per request.
const RESTART_ONLY_ADMISSION_FIELDS = [
  'headroomRatio',
  'deadlineTickMs',
  'maxQueueLength',
  'earlyReject',
  'maxBypassMs',
] as const

function buildPolicy(config: KvgateConfig, identity: IdentityResolver): Policy {
  const factory = policyFactories[config.policy.name]
  // parseConfig already refused unknown names; this guards a config built by hand.
  if (factory === undefined) throw errors.invalidConfig([`policy.name: unknown policy "${config.policy.name}"`])
  return factory({ users: identity.users(), options: config.policy.options })
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

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

  let identity = createIdentityResolver(config)
  let policy = buildPolicy(config, identity)
  const ledger = createLedger()
  const predictor = createPredictor(config.predictor)
  const tokens = createWordPieceTokenCounter()
  const inFlight = new Set<AbortController>()
  const tally = { started: 0, ended: 0 }

  const pool = createBackendPool({
    backends: backendConfigs,
    poll: config.metricsPoll,
    clock,
    reconciler: ledger,
    onPollRound() {
      // New usage figures may have made room, and adaptive policies re-divide what was served. A policy bug
      // must not stop the poller: log it and keep polling.
      try {
        policy.onTick(clock.now(), { servedTokensPerMinute: pool.servedTokensPerMinute() })
        admission.dispatch()
      } catch (err) {
        logger.error({ err }, 'dispatch after a metrics poll failed')
      }
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
    headroomRatio: config.admission.headroomRatio,
    deadlineTickMs: config.admission.deadlineTickMs,
    maxQueueLength: config.admission.maxQueueLength,
    earlyReject: config.admission.earlyReject,
    maxBypassMs: config.admission.maxBypassMs,
    onEvent: onAdmissionEvent,
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
    // One line per request is written by the completion handler; Fastify's own pair per request would double it.
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

  app.setErrorHandler((err: FastifyError, request, reply) => {
    // Fastify's own refusals (bad JSON, wrong content type, body too large) in OpenAI's error shape. On the
    // completion routes they end a request before its handler runs, so they are counted here.
    if (COMPLETION_PATHS.has(request.url.split('?')[0] ?? '')) {
      metrics.requestEnded('invalid_request', identity.labelFor(config.identity.anonymousUser))
    }
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
      const error = errors.invalidJson([err.message])
      return reply.code(error.statusCode).send(error.toBody())
    }
    if (err.statusCode !== undefined && err.statusCode < 500) {
      return reply.code(err.statusCode).send({
        error: {
          message: err.message,
          type: 'invalid_request_error',
          param: null,
          code: (err.code ?? 'invalid_request').toLowerCase(),
        },
      })
    }
    const error = toKvgateError(err)
    logger.error({ err }, 'unhandled error')
    return reply.code(error.statusCode).send(error.toBody())
  })

  let requestSeq = 0
  const requestPrefix = clock.wallNow().toString(36)
  const routeDeps = {
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
  app.post('/v1/chat/completions', createCompletionHandler(routeDeps, 'chat'))
  app.post('/v1/completions', createCompletionHandler(routeDeps, 'completion'))

  app.get('/health', async (_request, reply) => {
    const states = pool.states()
    const usable = states.filter((s) => s.usable).length
    const body = {
      status: usable > 0 ? 'ok' : 'unavailable',
      backends: states.map((s) => ({
        name: s.id,
        usable: s.usable,
        up: s.up,
        metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? Math.round(s.metricsAgeMs) : null,
      })),
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
    queued: admission.queued(),
    backends: pool
      .states()
      .map((s) => ({ ...s, metricsAgeMs: Number.isFinite(s.metricsAgeMs) ? s.metricsAgeMs : null })),
  }))

  await registerPassthrough(app, {
    pickUpstream: () => pool.pickForPassthrough()?.url,
    current: () => ({ config }),
  })

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
    // connection must not hold shutdown for the whole grace period.
    const deadlineMs = Date.now() + graceMs
    while (inFlight.size > 0 && Date.now() < deadlineMs) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(SHUTDOWN_CHECK_MS, Math.max(1, deadlineMs - Date.now()))),
      )
    }
    if (inFlight.size > 0) {
      logger.warn({ forwarding: inFlight.size }, 'grace period over: aborting streams still running')
      for (const controller of inFlight) controller.abort(errors.shuttingDown())
      // The aborted streams write their error event and end on the next turns of the event loop.
      while (inFlight.size > 0) await new Promise((resolve) => setTimeout(resolve, SHUTDOWN_CHECK_MS))
    }
    app.server.closeAllConnections()
    await serverClosed
    await pool.close()
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
      const previous = config
      const nextIdentity = createIdentityResolver(next)
      // A new policy starts with fresh state (VTC counters, TPM windows): only rebuild it when what it was
      // built from changed, so adding an API key does not reset everyone's fairness history.
      const policyChanged =
        !same(previous.policy, next.policy) ||
        !same(previous.users, next.users) ||
        !same(previous.defaultUser, next.defaultUser) ||
        previous.identity.anonymousUser !== next.identity.anonymousUser
      if (policyChanged) {
        const nextPolicy = buildPolicy(next, nextIdentity)
        admission.setPolicy(nextPolicy)
        policy = nextPolicy
      }
      identity = nextIdentity
      config = next
      // Only a logger kvgate made follows telemetry.logLevel; a caller's (or a disabled one) stays as given.
      if (options.logger === undefined) logger.level = next.telemetry.logLevel
      const needsRestart: string[] = RESTART_ONLY_SECTIONS.filter((section) => !same(previous[section], next[section]))
      for (const field of RESTART_ONLY_ADMISSION_FIELDS) {
        if (previous.admission[field] !== next.admission[field]) needsRestart.push(`admission.${field}`)
      }
      logger.info(
        {
          policy: next.policy.name,
          policyRebuilt: policyChanged,
          users: next.users.length,
          queued: admission.queueDepth(),
        },
        'config reloaded',
      )
      if (needsRestart.length > 0) {
        logger.warn({ sections: needsRestart }, 'config reloaded, but these sections only take effect after a restart')
      }
    },
    ledgerReservedTokens: () => ledger.reservedTokens(),
    queueDepth: () => admission.queueDepth(),
    backends: () => pool.states(),
    config: () => config,
  }
}
