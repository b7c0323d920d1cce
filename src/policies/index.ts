export type {
  Policy,
  PolicyContext,
  PolicyFactory,
  PolicyRequest,
  PolicyUser,
  PolicyUserState,
  QuotaDecision,
  RateLimitState,
  ServiceSample,
} from './policy.js'

import { createFifoPolicy } from './fifo.js'
import type { PolicyFactory } from './policy.js'

/** Policies by the name `policy.name` in YAML and `--policy` use. */
export const policyFactories: Readonly<Record<string, PolicyFactory>> = Object.freeze({
  fifo: createFifoPolicy,
})

export function policyNames(): string[] {
  return Object.keys(policyFactories)
}
