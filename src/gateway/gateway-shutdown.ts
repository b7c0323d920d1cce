import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { AdmissionController } from '../admission/index.js'
import type { Clock, TimerHandle } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { KeptPredictorState } from '../predictor/index.js'
import type { InFlight } from '../proxy/index.js'
import type { Fleet } from '../routing/index.js'
import type { SimHandle } from '../sim/index.js'
import type { SharedAdmission, StateStore } from '../state/index.js'
import type { RequestTracer } from '../telemetry/index.js'
import type { BackendPool } from '../upstream/index.js'

export interface ShutdownParts {
  readonly graceMs: number
  readonly clock: Clock
  readonly logger: Logger
  readonly admission: AdmissionController
  readonly inFlight: InFlight
  readonly app: FastifyInstance
  readonly admin: FastifyInstance
  readonly fleet: Fleet
  readonly tracer: RequestTracer
  readonly pool: BackendPool
  readonly predictorState: KeptPredictorState | undefined
  readonly shared: SharedAdmission | undefined
  /** A store the gateway opened is its to close; one passed in is shared with others (undefined here). */
  readonly ownedStore: StateStore | undefined
  readonly sim: SimHandle | undefined
  /** From the call on, every new request is answered 503 `shutting_down` (the gate). */
  startRefusing(): void
}

/** `Gateway.close()`, once: the queue answered, the streams given their grace, then everything in order. */
export async function shutDownGateway(parts: ShutdownParts): Promise<void> {
  const { graceMs, clock, logger, inFlight, app } = parts
  logger.info({ forwarding: inFlight.size, queued: parts.admission.queueDepth(), graceMs }, 'shutting down')
  // Queued requests get 503 shutting_down now, and so does every new request from here on (the gate):
  // the listener stays open while streams finish, so a request arriving now, on a new connection or a
  // kept-alive one, or sent but not yet read, is answered 503 with `connection: close`, not reset.
  parts.startRefusing()
  parts.admission.close()
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
  await parts.admin.close()
  await parts.fleet.close()
  // Every request has been reported by now: its span is in the batch, which this sends.
  await parts.tracer.shutdown()
  await parts.pool.close()
  parts.predictorState?.stop()
  await parts.shared?.close()
  await parts.ownedStore?.close()
  await parts.sim?.close()
  logger.info('kvgate stopped')
}
