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

export { createFifoPolicy } from './fifo.js'
export { createTpmPolicy } from './tpm.js'
export { createVtcPolicy, vtcServiceBound, VTC_DEFAULTS, type VtcOptions, type VtcBoundInput } from './vtc.js'
export {
  createDynamicTpmPolicy,
  waterFill,
  DYNAMIC_TPM_DEFAULTS,
  type DynamicTpmOptions,
} from './dynamic-tpm.js'

import { createDynamicTpmPolicy } from './dynamic-tpm.js'
import { createFifoPolicy } from './fifo.js'
import type { PolicyFactory } from './policy.js'
import { createTpmPolicy } from './tpm.js'
import { createVtcPolicy } from './vtc.js'

/**
 * Policies by the name `policy.name` in YAML and `--policy` use. Each factory validates its own
 * `policy.options` and throws `errors.invalidPolicyOptions` naming the field (`policy.options.wOut: …`).
 */
export const policyFactories: Readonly<Record<string, PolicyFactory>> = Object.freeze({
  fifo: createFifoPolicy,
  tpm: createTpmPolicy,
  vtc: createVtcPolicy,
  'dynamic-tpm': createDynamicTpmPolicy,
})

export function policyNames(): string[] {
  return Object.keys(policyFactories)
}
