import { isDeepStrictEqual } from 'node:util'
import type { AdmissionTicket, CapacityView, RoomRules, RoutingHints } from '../admission/index.js'
import type { BackendConfig, KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { Ledger } from '../ledger/index.js'
import { createModelDirectory, type BackendPool, type BackendState } from '../upstream/index.js'
import { createRoutingHints } from './block-hashes.js'
import { createFleetView, type FleetBackend } from './fleet-view.js'
import { listModels, resolveModel, type PoolMember, type ResolvedModel } from './model-pools.js'
import type { RouteChoice, Router, RouterFactory } from './router.js'

/** A backend's state with what the fleet adds: its pool memberships and whether it is draining. */
export interface FleetBackendState extends BackendState {
  /** Polled recently and its models known: it can be routed to (unless draining). */
  readonly usable: boolean
  /** Polled recently (the poller's own verdict). */
  readonly polled: boolean
  readonly draining: boolean
  /** The models it serves; null while its list is unknown. */
  readonly models: readonly string[] | null
  readonly modelsError: string | undefined
}

export interface FleetOptions {
  config: KvgateConfig
  /** The backends as built (the emulator's when none is configured). */
  backends: readonly BackendConfig[]
  pool: BackendPool
  ledger: Ledger
  clock: Clock
  headroomRatio: () => number
  /** The admission's room rules in force now (reserve by peak, overcommit). */
  rules?: () => RoomRules
  /** The room on a backend from a shared ledger (src/state); the local ledger's by default. */
  room?: (backend: FleetBackend, headroomTokens: number) => number
  routers: Readonly<Record<string, RouterFactory>>
  /** A request was admitted where the router chose (metrics). */
  onRouted?: (figures: RoutedRequest) => void
  /** A backend's model list was read for the first time, or changed. */
  onModelsChange?: (backendId: string, models: readonly string[]) => void
}

/** An admitted request's routing, for metrics and logs. */
export interface RoutedRequest {
  readonly model: string
  readonly backend: string
  readonly reason: RouteChoice['reason']
  readonly promptTokens: number
  readonly expectedHitTokens: number
  readonly sharedTokens: number
}

export interface RoutingHintsRequest {
  readonly model: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly tokenIds: () => readonly number[]
}

export interface Fleet {
  /** The admission queue's view of the backends: pools, routing, draining. */
  readonly view: CapacityView
  /** Start reading the backends' model lists. */
  start(): void
  close(): Promise<void>
  states(): FleetBackendState[]
  /** The model a request goes to (throws 404 model_not_found or 503 before anything is queued). */
  resolveModel(requested: string | undefined): ResolvedModel
  /** `GET /v1/models` for the fleet: the union of the pools. */
  listModels(): { object: 'list'; data: Record<string, unknown>[] }
  /** A backend for a call that skips admission (pass-through, `/tokenize`): of `model`'s pool when given. */
  pickUrl(model?: string): string | undefined
  /** Stop (or resume) new admissions to a backend; its running requests finish. False: no such backend. */
  setDraining(name: string, draining: boolean): boolean
  /** Apply a reloaded config: drain flags that changed, the routing, the default model. */
  configure(config: KvgateConfig): void
  routingHints(request: RoutingHintsRequest, arrivedAtMs: number): RoutingHints
  router(): Router
  /** A backend went unusable because it is down: its cache is taken for lost. */
  noteUsableChange(state: BackendState): void
}

function buildRouter(config: KvgateConfig, routers: Readonly<Record<string, RouterFactory>>): Router {
  const factory = routers[config.routing.name]
  // parseConfig already refused unknown names; this guards a config built by hand.
  if (factory === undefined) throw errors.invalidConfig([`routing.name: unknown router "${config.routing.name}"`])
  return factory({ options: config.routing.options })
}

const sessionHeaderOf = (config: KvgateConfig): string | undefined => {
  if (config.routing.name !== 'prefix-aware') return undefined
  return config.routing.options.sessionAffinity ? config.routing.options.sessionHeader : undefined
}

/**
 * The backends as one fleet: the poller's capacity and usage, the model directory's pool memberships, the
 * operator's drain flags, and the router, behind the admission queue's `CapacityView`.
 */
export function createFleet(options: FleetOptions): Fleet {
  const { pool, clock } = options
  let config = options.config
  const directory = createModelDirectory({
    backends: options.backends,
    dispatcher: pool.dispatcher,
    clock,
    refreshIntervalMs: config.models.refreshIntervalMs,
    retryIntervalMs: config.models.retryIntervalMs,
    timeoutMs: config.metricsPoll.timeoutMs,
    onChange(backendId) {
      options.onModelsChange?.(backendId, directory.modelsOf(backendId)?.models.map((m) => m.id) ?? [])
    },
  })
  let router = buildRouter(config, options.routers)
  const draining = new Map(options.backends.map((b) => [b.name, b.drain]))
  const urls = new Map(options.backends.map((b) => [b.name, b.url]))

  const members = (): PoolMember[] => options.backends.map((b) => ({ id: b.name, models: directory.modelsOf(b.name) }))

  const states = (): FleetBackendState[] =>
    pool.states().map((state) => {
      const models = directory.modelsOf(state.id)
      return {
        ...state,
        polled: state.usable,
        usable: state.usable && models !== undefined,
        draining: draining.get(state.id) === true,
        models: models === undefined ? null : models.models.map((m) => m.id),
        modelsError: directory.lastError(state.id),
      }
    })

  const fleetBackends = (): FleetBackend[] =>
    pool.states().map((state) => {
      const models = directory.modelsOf(state.id)
      return {
        id: state.id,
        capacityTokens: state.capacityTokens,
        usedTokens: state.usedTokens,
        usable: state.usable && models !== undefined,
        draining: draining.get(state.id) === true,
        // The directory's own map: nothing is copied per decision.
        models: models?.byId,
        waiting: state.waiting,
        running: state.running,
        blockSize: state.blockSize,
      }
    })

  const view = createFleetView({
    backends: fleetBackends,
    ledger: options.ledger,
    headroomRatio: options.headroomRatio,
    ...(options.rules === undefined ? {} : { rules: options.rules }),
    ...(options.room === undefined ? {} : { room: options.room }),
    router: () => router,
    clock,
    onRouted(ticket: AdmissionTicket, choice: RouteChoice) {
      options.onRouted?.({
        model: ticket.model,
        backend: choice.backendId,
        reason: choice.reason,
        promptTokens: ticket.promptTokens,
        expectedHitTokens: choice.expectedHitTokens,
        sharedTokens: choice.sharedTokens,
      })
    },
  })

  return {
    view,
    start: () => directory.start(),
    close: () => directory.close(),
    states,
    resolveModel: (requested) => resolveModel(requested, members(), config.models.default),
    listModels: () => listModels(members()),
    pickUrl(model) {
      // Most free KV among usable, non-draining backends (of the model's pool when one is named).
      let best: FleetBackendState | undefined
      for (const state of states()) {
        if (!state.usable || state.draining) continue
        if (model !== undefined && state.models?.includes(model) !== true) continue
        if (best === undefined || state.capacityTokens - state.usedTokens > best.capacityTokens - best.usedTokens) {
          best = state
        }
      }
      return best === undefined ? undefined : urls.get(best.id)
    },
    setDraining(name, on) {
      if (!draining.has(name)) return false
      draining.set(name, on)
      return true
    },
    configure(next) {
      // Built first: a router refusing its options leaves everything as it was.
      const nextRouter = isDeepStrictEqual(config.routing, next.routing) ? router : buildRouter(next, options.routers)
      // A drain flag the reload changed wins over setDraining(); one it left alone does not undo it.
      const previous = new Map(config.backends.map((b) => [b.name, b.drain]))
      for (const backend of next.backends) {
        if (draining.has(backend.name) && previous.get(backend.name) !== backend.drain) {
          draining.set(backend.name, backend.drain)
        }
      }
      router = nextRouter
      config = next
    },
    routingHints(request, arrivedAtMs) {
      const header = sessionHeaderOf(config)
      const raw = header === undefined ? undefined : request.headers[header]
      const sessionId = Array.isArray(raw) ? raw[0] : raw
      return createRoutingHints({
        model: request.model,
        tokenIds: request.tokenIds,
        // A session id is a client's free text: bounded, so a client cannot grow the session map's keys.
        sessionId: sessionId === undefined || sessionId === '' ? undefined : sessionId.slice(0, 256),
        arrivedAtMs,
      })
    },
    router: () => router,
    noteUsableChange(state) {
      if (!state.usable && !state.up) router.onBackendReset(state.id)
    },
  }
}
