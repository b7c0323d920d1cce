import { check, compile, formatProblem } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { FaultConfig } from './options.js'

/** The largest `/metrics` flood the emulator builds: 1 GiB, beyond any sane scrape-size limit. */
export const MAX_METRICS_PAD_BYTES = 1024 ** 3

/**
 * The JSON Schema of a (partial) fault configuration, shared by the config file, the CLI flags and
 * `POST /sim/faults`, so a bad value is refused the same way everywhere and names its field.
 */
export const faultConfigSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    latencySpikeRate: { type: 'number', minimum: 0, maximum: 1 },
    latencySpikeMs: { type: 'number', minimum: 0 },
    errorRate: { type: 'number', minimum: 0, maximum: 1 },
    streamCutRate: { type: 'number', minimum: 0, maximum: 1 },
    streamErrorRate: { type: 'number', minimum: 0, maximum: 1 },
    engineDead: { type: 'boolean' },
    metricsUnavailable: { type: 'boolean' },
    metricsDelayMs: { type: 'number', minimum: 0 },
    dieAfterMs: { type: ['number', 'null'], minimum: 0 },
    metricsOverrides: {
      type: 'object',
      propertyNames: { pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$' },
      additionalProperties: { anyOf: [{ type: 'number' }, { enum: ['NaN', '+Inf', '-Inf'] }] },
    },
    cacheConfigLabels: {
      type: 'object',
      propertyNames: { pattern: '^[a-zA-Z_][a-zA-Z0-9_]*$' },
      additionalProperties: { type: 'string' },
    },
    metricsPadBytes: { type: 'integer', minimum: 0, maximum: MAX_METRICS_PAD_BYTES },
    badGatewayHtmlRate: { type: 'number', minimum: 0, maximum: 1 },
  },
} as const

const validateFaults = compile(faultConfigSchema)

/** Check a partial fault configuration; throws `errors.invalidRequest` naming every bad field (`param`: the first). */
export function parseFaults(raw: unknown, where = 'faults'): Partial<FaultConfig> {
  const problems = check(validateFaults, raw, where)
  const [first] = problems
  if (first === undefined) return raw as Partial<FaultConfig>
  throw errors.invalidRequest([problems.map(formatProblem).join('; ')], { param: first.path })
}
