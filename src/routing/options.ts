import type { Static, TSchema } from 'typebox'
import { check, compile, formatProblem } from '../core/index.js'
import { errors } from '../errors/index.js'

/**
 * A router's options parser, as policies have theirs: `parse(raw)` returns the options with defaults
 * filled in, or throws `invalid_config` naming every bad field as `routing.options.FIELD`. The config
 * validates the same schema (its `routing` section has one branch per router), so this only fails for a
 * router built by hand. The input is cloned first: config hands out deep-frozen objects and the validator
 * writes defaults in place.
 */
export function createRouterOptionsParser<S extends TSchema>(schema: S): (raw: unknown) => Static<S> {
  const validate = compile(schema)
  return (raw) => {
    const data = structuredClone(raw ?? {}) as unknown
    const problems = check(validate, data, 'routing.options')
    if (problems.length > 0) throw errors.invalidConfig([[...new Set(problems.map(formatProblem))].join('; ')])
    return data as Static<S>
  }
}
