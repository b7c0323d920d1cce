import type { KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { StateStore } from './contracts.js'
import { createMemoryStateStore } from './memory-store.js'
import { createRedisStateStore } from './redis-store.js'

export type * from './contracts.js'
export { createMemoryStateStore } from './memory-store.js'
export { createRedisStateStore } from './redis-store.js'
export { QUOTA_WINDOW_MS } from './quota-window.js'
export {
  createSharedAdmission,
  type ConfirmationResult,
  type SharedAdmission,
  type SharedAdmissionOptions,
  type SharedStateStatus,
} from './shared-admission.js'
export { registerStateMetrics, type StateMetrics } from './state-metrics.js'

export type StateConfig = KvgateConfig['state']
export type StateStoreFactory = (config: StateConfig, context: { clock: Clock }) => Promise<StateStore>

/** Stores by the name `state.store` uses in YAML. */
export const stateStores: Readonly<Record<string, StateStoreFactory>> = Object.freeze({
  memory: async (_config, { clock }) => createMemoryStateStore({ clock }),
  redis: (config) => createRedisStateStore(config),
})

export async function createStateStore(config: StateConfig, context: { clock: Clock }): Promise<StateStore> {
  const factory = stateStores[config.store]
  if (factory === undefined) throw errors.invalidConfig([`state.store: unknown store "${config.store}"`])
  return await factory(config, context)
}
