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
  WaitAhead,
} from './policy.js'

export { createFifoPolicy, fifoOptionsSchema } from './fifo.js'
export { createTpmPolicy, tpmOptionsSchema } from './tpm.js'
export {
  createVtcPolicy,
  vtcServiceBound,
  vtcOptionsSchema,
  VTC_DEFAULTS,
  type VtcOptions,
  type VtcBoundInput,
} from './vtc.js'
export {
  createDynamicTpmPolicy,
  dynamicTpmOptionsSchema,
  waterFill,
  DYNAMIC_TPM_DEFAULTS,
  type DynamicTpmOptions,
} from './dynamic-tpm.js'

import { createDynamicTpmPolicy, dynamicTpmOptionsSchema } from './dynamic-tpm.js'
import { createFifoPolicy, fifoOptionsSchema } from './fifo.js'
import type { PolicyFactory } from './policy.js'
import { createTpmPolicy, tpmOptionsSchema } from './tpm.js'
import { createVtcPolicy, vtcOptionsSchema } from './vtc.js'

/**
 * Each policy's options schema by name. The config's `policy` section has one branch per entry, so
 * `policy.options` is validated (and its defaults filled) with the rest of the config, errors and all.
 */
export const policyOptionSchemas = Object.freeze({
  fifo: fifoOptionsSchema,
  tpm: tpmOptionsSchema,
  vtc: vtcOptionsSchema,
  'dynamic-tpm': dynamicTpmOptionsSchema,
})

export type PolicyName = keyof typeof policyOptionSchemas

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
