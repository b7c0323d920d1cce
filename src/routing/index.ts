export type {
  RouteCandidate,
  RouteChoice,
  RouteReason,
  RouteRequest,
  Router,
  RouterContext,
  RouterFactory,
  RouterStats,
} from './router.js'
export { fits, ROUTE_REASONS } from './router.js'
export { chainedBlockHashes, createRoutingHints, modelSeed, type RoutingHintsInput } from './block-hashes.js'
export { PrefixIndex, type PrefixIndexOptions } from './prefix-index.js'
export { createFleetView, DEFAULT_BLOCK_SIZE, type FleetBackend, type FleetViewOptions } from './fleet-view.js'
export { listModels, resolveModel, type PoolMember, type ResolvedModel } from './model-pools.js'
export {
  createFleet,
  type Fleet,
  type FleetBackendState,
  type FleetOptions,
  type RoutingHintsRequest,
} from './fleet.js'
export { createMostRoomRouter, mostRoomOptionsSchema } from './most-room.js'
export { createRoundRobinRouter, roundRobinOptionsSchema } from './round-robin.js'
export {
  createPrefixAwareRouter,
  DEFAULT_SESSION_HEADER,
  type PrefixAwareOptions,
  prefixAwareOptionsSchema,
} from './prefix-aware.js'

import { createMostRoomRouter, mostRoomOptionsSchema } from './most-room.js'
import { createPrefixAwareRouter, prefixAwareOptionsSchema } from './prefix-aware.js'
import { createRoundRobinRouter, roundRobinOptionsSchema } from './round-robin.js'
import type { RouterFactory } from './router.js'

/**
 * Each router's options schema by name. The config's `routing` section has one branch per entry, so
 * `routing.options` is validated (and its defaults filled) with the rest of the config.
 */
export const routerOptionSchemas = Object.freeze({
  'most-room': mostRoomOptionsSchema,
  'prefix-aware': prefixAwareOptionsSchema,
  'round-robin': roundRobinOptionsSchema,
})

export type RouterName = keyof typeof routerOptionSchemas

/** Routers by the name `routing.name` in YAML and `--routing` use. */
export const routerFactories: Readonly<Record<string, RouterFactory>> = Object.freeze({
  'most-room': createMostRoomRouter,
  'prefix-aware': createPrefixAwareRouter,
  'round-robin': createRoundRobinRouter,
})

export function routerNames(): string[] {
  return Object.keys(routerFactories)
}
