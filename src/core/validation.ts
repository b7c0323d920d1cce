import {
  type AnySchemaObject,
  Ajv,
  type ErrorObject,
  type SchemaObject,
  type SchemaValidateFunction,
  type ValidateFunction,
} from 'ajv'
import type { DataValidationCxt } from 'ajv/dist/types/index.js'
import { type Static, type TSchema, Type } from 'typebox'

/**
 * kvgate's one JSON Schema validator and its one error formatter, shared by the config, the policies'
 * options, the emulator's options and faults, and (through `compileRequestSchema`) the gateway's Fastify route
 * schemas, which validate untrusted bodies: those stop at the first error and fill no defaults.
 *
 * - `compile(schema)` returns ajv's validate function. It fills `default`s in place, reports every error at
 *   once and never coerces types (so it suits JSON, not query strings).
 * - `compileRequestSchema(schema)` is the same for untrusted request bodies: first error only, no defaults,
 *   no data kept. It fits Fastify's `validatorCompiler`:
 *   `app.setValidatorCompiler(({ schema }) => compileRequestSchema(schema))`, with
 *   `schemaErrorFormatter: (errors, where) => errors.invalidRequest([formatErrors(errors, where)])`.
 * - `check(validate, data, where)` runs it and returns the problems (empty when valid).
 * - `validationProblems(errors, where)` / `formatErrors(errors, where)` turn ajv's errors into
 *   `where.field.path: reason`, naming every bad field: `predictor.windowSize: must be >= predictor.minSamples (20)`.
 *   The formatter never prints a value it was given, so a secret cannot leak through it. The only values it
 *   prints are a discriminator's tag (`unknown policy "foo"`), a number a field is compared with, and a
 *   duplicate's value when the field is not `secret`.
 *
 * Keywords kvgate adds to JSON Schema:
 * - `crossField: [schema, …]`: rules that relate fields of the object they sit on, checked after every
 *   default of that object is filled (so a rule sees `minSamples: 20` when the YAML left it out). Build them
 *   with `atLeast`, `greaterThan`, `atMost`, `differentFrom` and `when` below, or write plain JSON Schema
 *   (`$data` references are on).
 * - `uniqueBy: 'name'` on an array of objects: no two items share that property (`users.1.name: duplicate of
 *   users.0.name ("alice")`).
 * - `secret: true` on a string: the value is never printed (duplicates say which item, not what value), and
 *   `secretValues(schema, data)` finds it, so the caller can mask it in text that came from elsewhere.
 * - `discriminator` (ajv's own): a `oneOf` picked by a tag property, with defaults filled inside the chosen
 *   branch; a `title` on the schema names the tag in errors (`policy.name: unknown policy "foo"`).
 *
 * One instance per process is deliberate: it holds compiled schemas, not state. Validation is synchronous,
 * and `validate.errors` is read right after the call that set it.
 */
const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  // A misspelt keyword or a keyword that cannot apply to its type is a bug in a schema: fail at compile time.
  strict: true,
  allowUnionTypes: true,
  $data: true,
  discriminator: true,
  // Errors carry their schema (the formatter reads `$data` references and `if` conditions from it). They
  // carry `data` too; nothing here prints it.
  verbose: true,
})

/**
 * The same validator for request bodies, with two differences that matter for untrusted input: it stops at
 * the first error (a body of a million bad items would otherwise build a million error objects) and neither
 * fills defaults into the body nor keeps the data in its errors. Fastify route schemas compile with it:
 * `app.setValidatorCompiler(({ schema }) => compileRequestSchema(schema))`.
 */
// strictRequired off: `anyOf: [{ required: ['input'] }, { required: ['messages'] }]` is how a body says "one of these".
const requestAjv = new Ajv({
  allErrors: false,
  useDefaults: false,
  strict: true,
  strictRequired: false,
  allowUnionTypes: true,
})

for (const instance of [ajv, requestAjv]) instance.addKeyword({ keyword: 'secret', schemaType: 'boolean' })
// `post`: ajv fills an object's defaults in its own pass over `properties`; a rule run with the other keywords
// of the object would see its fields before their defaults, and `{ requireAuth: true }` would pass `when`.
ajv.addKeyword({
  keyword: 'crossField',
  post: true,
  schemaType: 'array',
  macro: (rules: unknown[]) => ({ allOf: rules }),
})

const uniqueBy: SchemaValidateFunction = (
  properties: string | string[],
  data: unknown[],
  parentSchema?: AnySchemaObject,
  context?: DataValidationCxt,
): boolean => {
  const found: Partial<ErrorObject>[] = []
  for (const property of typeof properties === 'string' ? [properties] : properties) {
    const secret = parentSchema?.['items']?.properties?.[property]?.secret === true
    const seen = new Map<unknown, number>()
    data.forEach((item, i) => {
      if (typeof item !== 'object' || item === null) return
      const value = (item as Record<string, unknown>)[property]
      if (value === undefined) return
      const first = seen.get(value)
      if (first === undefined) seen.set(value, i)
      else {
        const instancePath = `${context?.instancePath ?? ''}/${i}/${property}`
        found.push({
          keyword: 'uniqueBy',
          instancePath,
          params: { property, first, secret, ...(secret ? {} : { value }) },
        })
      }
    })
  }
  uniqueBy.errors = found
  return found.length === 0
}
ajv.addKeyword({
  keyword: 'uniqueBy',
  type: 'array',
  schemaType: ['string', 'array'],
  errors: true,
  validate: uniqueBy,
})

export type { ErrorObject, ValidateFunction }

/** One bad field: `path` is dotted (`predictor.windowSize`, `users.1.name`), `message` the reason. */
export interface ValidationProblem {
  readonly path: string
  readonly message: string
}

/** Compile a schema with the shared instance (compiled once per schema object; ajv caches by identity). */
export function compile<T = unknown>(schema: SchemaObject | object): ValidateFunction<T> {
  return ajv.compile<T>(schema as SchemaObject)
}

/** Compile a request body schema: first error only, no defaults filled, no data kept (see `requestAjv`). */
export function compileRequestSchema<T = unknown>(schema: SchemaObject | object): ValidateFunction<T> {
  return requestAjv.compile<T>(schema as SchemaObject)
}

/** Validate `data` in place (defaults are filled); the problems, or an empty list when it is valid. */
export function check(validate: ValidateFunction, data: unknown, where = ''): ValidationProblem[] {
  return validate(data) ? [] : validationProblems(validate.errors, where)
}

/** `path: message`, as every kvgate validation error reads. */
export function formatProblem(problem: ValidationProblem): string {
  return `${problem.path}: ${problem.message}`
}

/** ajv's errors as one line: `where.a: reason; where.b: reason` (duplicates dropped). */
export function formatErrors(errors: readonly ErrorObject[] | null | undefined, where = ''): string {
  return [...new Set(validationProblems(errors, where).map(formatProblem))].join('; ')
}

const join = (where: string, path: string): string => [where, path].filter((p) => p !== '').join('.')
const dotted = (pointer: string): string =>
  pointer
    .split('/')
    .slice(1)
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .join('.')
const quoted = (values: readonly unknown[]): string => values.map((v) => JSON.stringify(v)).join(', ')
const isDataRef = (value: unknown): value is { $data: string } =>
  typeof value === 'object' && value !== null && typeof (value as { $data?: unknown }).$data === 'string'

/** The field a `$data` pointer names, from the error's own location: `1/minSamples` at /predictor/windowSize. */
function referencedField(instancePath: string, pointer: string): string {
  if (pointer.startsWith('/')) return dotted(pointer)
  const match = /^(\d+)(.*)$/.exec(pointer)
  const up = Number(match?.[1] ?? 0)
  const base = instancePath.split('/').slice(1)
  return [...base.slice(0, base.length - up), ...dotted(match?.[2] ?? '').split('.')].filter((s) => s !== '').join('.')
}

/** An `if` of `when()`'s shape as words: `identity.requireAuth is true`. */
function describeCondition(ifError: ErrorObject, where: string): string {
  const properties = (ifError.schema as SchemaObject | undefined)?.['properties'] as
    | Record<string, SchemaObject>
    | undefined
  const parts = Object.entries(properties ?? {}).map(([field, rule]) => {
    const name = join(where, join(dotted(ifError.instancePath), field))
    if ('const' in rule) return `${name} is ${JSON.stringify(rule['const'])}`
    if (Array.isArray(rule['enum'])) return `${name} is one of ${quoted(rule['enum'])}`
    return `${name} matches its condition`
  })
  return parts.length > 0 ? parts.join(' and ') : 'its condition holds'
}

/** The tag values a discriminated `oneOf` accepts. */
function tagValues(parentSchema: SchemaObject | undefined, tag: string): unknown[] {
  const branches = (parentSchema?.['oneOf'] ?? []) as SchemaObject[]
  return branches.flatMap((branch) => {
    const rule = branch['properties']?.[tag] as SchemaObject | undefined
    if (rule === undefined) return []
    return 'const' in rule ? [rule['const']] : ((rule['enum'] as unknown[] | undefined) ?? [])
  })
}

function describe(error: ErrorObject, where: string): ValidationProblem | undefined {
  const path = join(where, dotted(error.instancePath))
  const at = (field: string): string => join(path, field)
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'additionalProperties': {
      // In an object that holds a secret, a stray field's name may be the secret (`- sk-abc…: alice`).
      const holdsSecret = Object.values(error.parentSchema?.['properties'] ?? {}).some(
        (property) => (property as SchemaObject)['secret'] === true,
      )
      if (holdsSecret) return { path: path || '(root)', message: 'has an unknown field (its name is not shown)' }
      return { path: at(String(params['additionalProperty'])), message: 'unknown field' }
    }
    case 'required':
      return { path: at(String(params['missingProperty'])), message: 'is required' }
    case 'enum':
      return { path: path || '(root)', message: `must be one of ${quoted(params['allowedValues'] as unknown[])}` }
    case 'const':
      return { path: path || '(root)', message: `must be ${JSON.stringify(params['allowedValue'])}` }
    case 'type':
      return { path: path || '(root)', message: `must be ${String(params['type']).split(',').join(' or ')}` }
    case 'minItems':
      return {
        path,
        message: params['limit'] === 1 ? 'must not be empty' : `must have at least ${params['limit']} items`,
      }
    case 'discriminator': {
      const tag = String(params['tag'])
      const valid = tagValues(error.parentSchema as SchemaObject | undefined, tag)
      const title = error.parentSchema?.['title']
      if (params['error'] === 'mapping' && typeof title === 'string') {
        const value = JSON.stringify(String(params['tagValue']).slice(0, 64))
        return { path: at(tag), message: `unknown ${title} ${value} (valid: ${valid.join(', ')})` }
      }
      return { path: at(tag), message: `must be one of ${quoted(valid)}` }
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      if (!isDataRef(error.schema)) break
      // The other field is itself invalid (and reported on its own): no comparison to speak of.
      if (typeof params['limit'] !== 'number') return undefined
      const other = join(where, referencedField(error.instancePath, error.schema.$data))
      return { path, message: `must be ${params['comparison']} ${other} (${params['limit']})` }
    }
    case 'not': {
      const rule = error.schema as SchemaObject | undefined
      if (isDataRef(rule?.['const'])) {
        return {
          path,
          message: `must differ from ${join(where, referencedField(error.instancePath, rule['const'].$data))}`,
        }
      }
      if (Array.isArray(rule?.['enum'])) return { path, message: `must not be one of ${quoted(rule['enum'])}` }
      return { path, message: 'is not allowed' }
    }
    case 'uniqueBy': {
      // The same field of the first item with that value: `/users/3/name` -> `users.0.name`.
      const item = dotted(error.instancePath).split('.').slice(0, -2)
      const first = join(where, [...item, String(params['first']), String(params['property'])].join('.'))
      const value = params['secret'] === true ? '' : ` (${JSON.stringify(params['value'])})`
      return { path, message: `duplicate of ${first}${value}` }
    }
    // Wrappers whose inner errors say what is wrong.
    case 'if':
    case 'crossField':
    case 'allOf':
    case 'oneOf':
      return undefined
  }
  return { path: path || '(root)', message: error.message ?? 'is invalid' }
}

/** ajv's errors as problems, each naming its field under `where` (`policy.options`, `faults`, `body`, …). */
export function validationProblems(errors: readonly ErrorObject[] | null | undefined, where = ''): ValidationProblem[] {
  const list = errors ?? []
  // An `if` error only says "must match then"; its condition goes onto the errors found under its `then`.
  const conditions = list
    .filter((e) => e.keyword === 'if')
    .map((e) => ({ prefix: `${e.schemaPath.replace(/\/if$/, '')}/then/`, text: describeCondition(e, where) }))
  const problems: ValidationProblem[] = []
  for (const error of list) {
    const problem = describe(error, where)
    if (problem === undefined) continue
    const condition = conditions.find((c) => error.schemaPath.startsWith(c.prefix))
    problems.push(
      condition === undefined ? problem : { ...problem, message: `${problem.message} (when ${condition.text})` },
    )
  }
  return problems
}

// Cross-field rule builders, for `crossField: [...]`. Paths are dotted and relative to the object the rule
// sits on (`atLeast('windowSize', 'minSamples')` on the predictor section; `differentFrom('admission.deadlineHeader',
// 'identity.header')` on the root).

/** `schema` applied at a dotted path inside the object. */
function atPath(path: string, schema: SchemaObject): SchemaObject {
  return path
    .split('.')
    .reverse()
    .reduce<SchemaObject>((inner, field) => ({ type: 'object', properties: { [field]: inner } }), schema)
}

/** A `$data` pointer from `field` to `other`, both relative to the same object. */
function pointer(field: string, other: string): string {
  return `${field.split('.').length}/${other.split('.').join('/')}`
}

const compare = (keyword: string) => (field: string, other: string) =>
  atPath(field, { type: 'number', [keyword]: { $data: pointer(field, other) } })

/** `field >= other`. */
export const atLeast = compare('minimum')
/** `field > other`. */
export const greaterThan = compare('exclusiveMinimum')
/** `field <= other`. */
export const atMost = compare('maximum')

/** `field` must not equal `other` (`must differ from identity.header`). */
export function differentFrom(field: string, other: string): SchemaObject {
  return atPath(field, { not: { const: { $data: pointer(field, other) } } })
}

/**
 * When every field in `condition` has the given value, each field in `then` must match its schema:
 * `when({ requireAuth: true }, { apiKeys: { type: 'array', minItems: 1 } })` reads
 * `identity.apiKeys: must not be empty (when identity.requireAuth is true)`.
 */
export function when(
  condition: Readonly<Record<string, string | number | boolean>>,
  then: Readonly<Record<string, SchemaObject>>,
): SchemaObject {
  const properties = Object.fromEntries(Object.entries(condition).map(([field, value]) => [field, { const: value }]))
  return {
    if: { type: 'object', required: Object.keys(condition), properties },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then keyword; the object is never awaited
    then: { type: 'object', properties: then },
  }
}

/**
 * `schema` or null, as one JSON Schema type list (`type: ['integer', 'null']`), so a wrong value gets one
 * error (`must be integer,null`) rather than one per branch of an `anyOf`. `schema` must have a single `type`.
 */
export function nullable<S extends TSchema>(schema: S, options: Readonly<Record<string, unknown>> = {}) {
  const { type, ...rest } = schema as unknown as SchemaObject
  return Type.Unsafe<Static<S> | null>({ ...rest, type: [type, 'null'], ...options })
}

/**
 * Every string in `data` whose schema says `secret: true` (found through `properties`, `items`, `oneOf`,
 * `anyOf` and `allOf`), so text that did not come from the formatter (a YAML error, a message built by hand)
 * can be masked with `redactSecrets`.
 */
export function secretValues(schema: unknown, data: unknown): string[] {
  const found = new Set<string>()
  const walk = (s: unknown, d: unknown): void => {
    if (typeof s !== 'object' || s === null) return
    const node = s as SchemaObject
    if (node['secret'] === true && typeof d === 'string' && d !== '') found.add(d)
    for (const key of ['oneOf', 'anyOf', 'allOf']) for (const branch of (node[key] ?? []) as unknown[]) walk(branch, d)
    if (typeof d !== 'object' || d === null) return
    if (Array.isArray(d)) {
      for (const item of d) walk(node['items'], item)
      return
    }
    const known = (node['properties'] ?? {}) as Record<string, unknown>
    for (const [key, child] of Object.entries(known)) walk(child, (d as Record<string, unknown>)[key])
    // A map (`Type.Record`): every entry's value against the one value schema.
    const mapped = Object.values((node['patternProperties'] ?? {}) as Record<string, unknown>)
    if (mapped.length === 1) {
      for (const [key, child] of Object.entries(d)) if (!(key in known)) walk(mapped[0], child)
    }
  }
  walk(schema, data)
  return [...found]
}

export const REDACTED = '[redacted]'

// A "secret" shorter than this is no credential (config refuses keys under 8 characters) and masking it would
// blank out ordinary words of the message.
const MIN_SECRET_LENGTH = 4

/** `text` with every secret replaced by `[redacted]` (longest first, so a key that contains another goes whole). */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  let out = text
  const masked = [...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length)
  for (const secret of masked) out = out.replaceAll(secret, REDACTED)
  return out
}
