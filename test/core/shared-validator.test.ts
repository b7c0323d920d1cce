import Fastify from 'fastify'
import { Type } from 'typebox'
import { describe, expect, it } from 'vitest'
import {
  atLeast,
  check,
  compile,
  differentFrom,
  formatErrors,
  greaterThan,
  nullable,
  redactSecrets,
  secretValues,
  type ValidationProblem,
  when,
} from '../../src/core/index.js'
import { errors, KvgateError } from '../../src/errors/index.js'

const lines = (problems: readonly ValidationProblem[]): string[] => problems.map((p) => `${p.path}: ${p.message}`)

/** The one validator and formatter that config, policies, the emulator and route schemas share. */
describe('shared validator', () => {
  const section = Type.Object(
    {
      low: Type.Integer({ minimum: 0, default: 10 }),
      high: Type.Integer({ minimum: 0, default: 100 }),
      mode: Type.Enum(['a', 'b'], { default: 'a' }),
      list: Type.Array(Type.String(), { default: [] }),
      limit: nullable(Type.Integer({ minimum: 1 }), { default: null }),
    },
    {
      additionalProperties: false,
      crossField: [greaterThan('high', 'low'), when({ mode: 'b' }, { list: { type: 'array', minItems: 1 } })],
    },
  )
  const validate = compile(section)

  it('fills defaults in place and names every bad field, with cross-field rules after the defaults', () => {
    const data: Record<string, unknown> = {}
    expect(check(validate, data)).toEqual([])
    expect(data).toEqual({ low: 10, high: 100, mode: 'a', list: [], limit: null })
    expect(lines(check(validate, { low: 500, mode: 'b', limit: 'x', extra: 1 }, 'section'))).toEqual([
      'section.extra: unknown field',
      'section.limit: must be integer or null',
      'section.high: must be > section.low (500)',
      'section.list: must not be empty (when section.mode is "b")',
    ])
    expect(formatErrors(validate.errors, 'section')).toContain('; section.limit: must be integer or null; ')
  })

  it('reads relative and absolute $data references as field names', () => {
    const nested = compile(
      Type.Object(
        {
          a: Type.Object({ size: Type.Integer() }, { additionalProperties: false }),
          b: Type.Object({ size: Type.Integer(), name: Type.String() }, { additionalProperties: false }),
        },
        { additionalProperties: false, crossField: [atLeast('a.size', 'b.size'), differentFrom('b.name', 'a.size')] },
      ),
    )
    expect(lines(check(nested, { a: { size: 1 }, b: { size: 2, name: 'x' } }))).toEqual([
      'a.size: must be >= b.size (2)',
    ])
  })

  it('names the tag of a discriminated oneOf, by its title when it has one', () => {
    const branch = (kind: string) =>
      Type.Object({ kind: Type.Literal(kind), n: Type.Integer() }, { additionalProperties: false })
    const schema = {
      type: 'object',
      required: ['kind'],
      properties: { kind: { type: 'string' } },
      discriminator: { propertyName: 'kind' },
      oneOf: [branch('x'), branch('y')],
    }
    expect(lines(check(compile(schema), { kind: 'z', n: 1 }))).toEqual(['kind: must be one of "x", "y"'])
    expect(lines(check(compile({ ...schema, title: 'shape' }), { kind: 'z' }))).toEqual([
      'kind: unknown shape "z" (valid: x, y)',
    ])
    // Inside the chosen branch only: no noise from the other one.
    expect(lines(check(compile(schema), { kind: 'y', n: 'one' }))).toEqual(['n: must be integer'])
  })

  it('prints a duplicate value unless the field is secret, and finds secrets to mask elsewhere', () => {
    const keys = Type.Array(
      Type.Object({ key: Type.String({ secret: true }), user: Type.String() }, { additionalProperties: false }),
      { uniqueBy: ['key', 'user'] },
    )
    const data = [
      { key: 'sk-one-123456', user: 'a' },
      { key: 'sk-one-123456', user: 'a' },
    ]
    const validate = compile(keys)
    validate(data)
    const text = formatErrors(validate.errors ?? [], 'keys')
    expect(text).toBe('keys.1.key: duplicate of keys.0.key; keys.1.user: duplicate of keys.0.user ("a")')
    expect(secretValues(keys, data)).toEqual(['sk-one-123456'])
    expect(redactSecrets('sk-one-123456 and sk-one-1234567', ['sk-one-123456', 'sk-one-1234567'])).toBe(
      '[redacted] and [redacted]',
    )
  })

  it("serves as Fastify's validator compiler for route schemas, with OpenAI-shaped errors", async () => {
    const app = Fastify({
      schemaErrorFormatter: (list, where) => errors.invalidRequest([formatErrors(list, where)]),
    })
    app.setValidatorCompiler(({ schema }) => compile(schema))
    app.setErrorHandler((err, _request, reply) => {
      const error = err instanceof KvgateError ? err : errors.internal([String(err)])
      return reply.status(error.statusCode).send(error.toBody())
    })
    const body = Type.Object({
      model: Type.String(),
      max_tokens: Type.Optional(Type.Integer({ minimum: 1 })),
      stream: Type.Boolean({ default: false }),
    })
    app.post('/v1/completions', { schema: { body } }, async (request) => request.body)
    try {
      const bad = await app.inject({ method: 'POST', url: '/v1/completions', payload: { max_tokens: 0 } })
      expect(bad.statusCode).toBe(400)
      expect(bad.json()).toEqual({
        error: {
          message: 'body.model: is required; body.max_tokens: must be >= 1',
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_request',
        },
      })
      const good = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'm' } })
      expect(good.json()).toEqual({ model: 'm', stream: false })
    } finally {
      await app.close()
    }
  })
})
