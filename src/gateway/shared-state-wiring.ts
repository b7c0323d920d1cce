import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { KvgateConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import type { Ledger } from '../ledger/index.js'
import { VTC_DEFAULTS, type VtcOptions } from '../policies/index.js'
import {
  createSharedAdmission,
  registerStateMetrics,
  type SharedAdmission,
  type SharedAdmissionOptions,
  type StateMetrics,
  type StateStore,
} from '../state/index.js'

export interface SharedStateParts {
  readonly store: StateStore
  /** The config in force now: the `state` section is read once, the headroom and the prices at each use. */
  config(): KvgateConfig
  readonly clock: Clock
  readonly ledger: Ledger
  readonly backends: SharedAdmissionOptions['backends']
  readonly logger: Logger
  /** A release elsewhere or a poll may have made room: the admission queue dispatches. */
  onWake(): void
  /** The state metrics, once registered (they are built after the shared admission). */
  stateMetrics(): StateMetrics | undefined
}

/** The shared admission around the local ledger when a shared store is configured (docs/replicas.md). */
export function createGatewaySharedAdmission(parts: SharedStateParts): SharedAdmission {
  const { store, config, logger } = parts
  const { state } = config()
  return createSharedAdmission({
    store,
    clock: parts.clock,
    replicaId: state.replicaId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    leaseMs: state.leaseMs,
    heartbeatMs: state.heartbeatMs,
    expectedReplicas: state.expectedReplicas,
    ledger: parts.ledger,
    backends: parts.backends,
    headroomRatio: () => config().admission.headroomRatio,
    fairPrices: () => {
      const { policy } = config()
      return policy.name === 'vtc' ? { ...VTC_DEFAULTS, ...(policy.options as Partial<VtcOptions>) } : undefined
    },
    onWake: () => parts.onWake(),
    onModeChange(degraded, reason) {
      if (degraded) logger.warn({ reason }, 'shared state unreachable: degraded mode, admitting on a 1/N share')
      else logger.info({ store: store.kind }, 'shared state in use')
    },
    onConfirmation: (result, seconds) => parts.stateMetrics()?.confirmation(result, seconds),
  })
}

/**
 * The state metrics on every gateway, so dashboards and alerts read alike whatever the store: one process's
 * memory is always up, never degraded, one replica.
 */
export function registerGatewayStateMetrics(registry: Registry, shared: SharedAdmission | undefined): StateMetrics {
  const soloStatus = { store: 'memory', up: true, degraded: false, replicas: 1, lastError: undefined, resyncs: 0 }
  return registerStateMetrics(registry, shared?.status ?? (() => soloStatus))
}
