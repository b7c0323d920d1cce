import { Ajv, type ErrorObject, type SchemaObject } from 'ajv'
import { errors } from '../errors/index.js'

// One validator instance for all policies; it holds compiled schemas only, no per-call state.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true })

function describe(policy: string, error: ErrorObject): string {
  const path = error.instancePath.replace(/^\//, '').replaceAll('/', '.')
  const prefix = path === '' ? 'policy.options' : `policy.options.${path}`
  if (error.keyword === 'additionalProperties') {
    const field = (error.params as { additionalProperty: string }).additionalProperty
    return `${prefix}.${field}: unknown option for policy ${policy}`
  }
  return `${prefix}: ${error.message ?? 'is invalid'}`
}

/**
 * Compile a policy's options schema into a parser: `parse(raw)` returns the options with defaults filled
 * in, or throws `errors.invalidPolicyOptions` naming every bad field as `policy.options.FIELD`. The input is
 * cloned first because config hands policies deep-frozen objects and ajv writes defaults in place.
 */
// The schema is a plain JSON Schema object rather than ajv's JSONSchemaType<T>: that type cannot express
// readonly fields or `number | null` without casts at every call site, and the tests pin the parsed shapes.
export function createOptionsParser<T>(policy: string, schema: SchemaObject): (raw: unknown) => T {
  const validate = ajv.compile<T>(schema)
  return (raw) => {
    const data = structuredClone(raw ?? {}) as unknown
    if (!validate(data)) {
      const problems = [...new Set((validate.errors ?? []).map((e) => describe(policy, e)))]
      throw errors.invalidPolicyOptions([problems.join('; ')])
    }
    return data
  }
}
