import type { FastifyInstance } from 'fastify'
import { compileRequestSchema, formatErrors } from '../core/index.js'
import { errors } from '../errors/index.js'
import { paramOf } from './request-schemas.js'

/**
 * Route schemas compile with the shared validator (src/core, first error only for untrusted bodies), and a
 * body that does not match is a 400 `invalid_request` in OpenAI's shape whose `param` names the field
 * (`messages[0].content[0]`) and whose message says what is wrong with it. The error reaches the route's error
 * handler like any other, so a generating route counts and logs it through its lifecycle.
 */
export function installRequestValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema }) => compileRequestSchema(schema))
  app.setSchemaErrorFormatter((problems, dataVar) => {
    const first = problems[0]
    const missing = first?.keyword === 'required' ? String(first.params['missingProperty']) : undefined
    const param = first === undefined ? null : paramOf(first.instancePath, missing)
    return errors.invalidRequest([formatErrors(problems as never, dataVar)], param === null ? {} : { param })
  })
}
