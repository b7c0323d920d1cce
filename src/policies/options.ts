import type { Static, TSchema } from 'typebox'
import { check, compile, formatProblem } from '../core/index.js'
import { errors } from '../errors/index.js'

/**
 * Compile a policy's options schema (TypeBox, so the options type is `Static<typeof schema>`) into a parser:
 * `parse(raw)` returns the options with defaults filled in, or throws `errors.invalidPolicyOptions` naming
 * every bad field as `policy.options.FIELD`. The config validates the same schema (its `policy` section has one
 * branch per policy), so a policy built from a loaded config never fails here; a policy built by hand (tests,
 * the fairness harness) gets the same checks. The input is cloned first because config hands policies
 * deep-frozen objects and the validator writes defaults in place.
 */
export function createOptionsParser<S extends TSchema>(schema: S): (raw: unknown) => Static<S> {
  const validate = compile(schema)
  return (raw) => {
    const data = structuredClone(raw ?? {}) as unknown
    const problems = check(validate, data, 'policy.options')
    if (problems.length > 0) throw errors.invalidPolicyOptions([[...new Set(problems.map(formatProblem))].join('; ')])
    return data as Static<S>
  }
}
