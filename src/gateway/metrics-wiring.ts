import type { AdmissionController } from '../admission/index.js'
import type { BackendConfig } from '../config/index.js'
import type { Clock } from '../core/index.js'
import { OTHER_USER_LABEL, type IdentityResolver } from '../identity/index.js'
import type { Ledger } from '../ledger/index.js'
import type { Policy } from '../policies/index.js'
import type { Predictor } from '../predictor/index.js'
import type { Fleet } from '../routing/index.js'
import {
  createGatewayMetrics,
  createRoutingMetrics,
  type GatewayMetrics,
  type RoutingMetrics,
} from '../telemetry/index.js'

export interface MetricSourceParts {
  readonly clock: Clock
  readonly admission: AdmissionController
  readonly ledger: Ledger
  readonly backends: readonly BackendConfig[]
  readonly fleet: Fleet
  readonly predictor: Predictor
  /** The policy and identity in force now (a reload swaps them). */
  policy(): Policy
  identity(): IdentityResolver
}

/** The gateway's metrics and the routing metrics on the same registry, each read from the live parts. */
export function createGatewayMetricSet(parts: MetricSourceParts): {
  readonly metrics: GatewayMetrics
  readonly routingMetrics: RoutingMetrics
} {
  const { admission, ledger, fleet, predictor } = parts
  const metrics = createGatewayMetrics({
    queueDepth: () => admission.queueDepth(),
    ledger: () =>
      parts.backends.map((b) => ({
        backend: b.name,
        reservedTokens: ledger.outstandingTokens(b.name),
        reservations: ledger.liveCount(b.name),
        ungeneratedTokens: ledger.ungeneratedTokens(b.name),
      })),
    backends: () => fleet.states(),
    predictor: () =>
      predictor.stats().map((s) => ({
        model: s.model,
        outputTokens: s.quantileTokens,
        coverageRatio: Number.isNaN(s.coverageRatio) ? undefined : s.coverageRatio,
        overReservationRatio: Number.isNaN(s.overReservationRatio) ? undefined : s.overReservationRatio,
        censored: s.censored,
      })),
    policyUsers: () => {
      const identity = parts.identity()
      return (
        parts
          .policy()
          .userStates(parts.clock.now())
          .map((s) => ({
            user: identity.labelFor(s.user),
            counter: s.counter,
            quotaTokensPerMinute: s.quotaTokensPerMinute,
          }))
          // Unlabelled users would all write the one `other` series; leave it out rather than show one at random.
          .filter((s) => s.user !== OTHER_USER_LABEL)
      )
    },
    waitFactors: () => admission.stats().waitFactors,
  })
  const routingMetrics = createRoutingMetrics(metrics.registry, {
    backends: () => fleet.states(),
    indexBlocks: () => fleet.router().stats().indexBlocks ?? {},
  })
  return { metrics, routingMetrics }
}
