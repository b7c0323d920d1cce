import { type Static, Type } from 'typebox'
import { type PolicyName, policyOptionSchemas } from '../../policies/index.js'

export const DEFAULT_POLICY: PolicyName = 'fifo'

/** `{ name, options }` for each policy, its options typed by the policy's own schema. */
export type PolicyConfig = {
  [N in PolicyName]: { name: N; options: Static<(typeof policyOptionSchemas)[N]> }
}[PolicyName]

/**
 * `policy.options` belong to `policy.name`: a discriminated `oneOf` with one branch per registered policy,
 * each validating the options by that policy's schema (src/policies), with its defaults filled in. An unknown
 * name reads `policy.name: unknown policy "lottery" (valid: fifo, tpm, vtc, dynamic-tpm)`.
 */
export const policySection = Type.Unsafe<PolicyConfig>({
  type: 'object',
  title: 'policy',
  additionalProperties: false,
  default: {},
  required: ['name'],
  properties: {
    name: { type: 'string', default: DEFAULT_POLICY },
    options: { type: 'object', default: {} },
  },
  discriminator: { propertyName: 'name' },
  oneOf: Object.entries(policyOptionSchemas).map(([name, options]) =>
    Type.Object({ name: Type.Literal(name), options }, { additionalProperties: false }),
  ),
})
