import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { atMost, check, compile, formatProblem } from '../core/index.js'
import { errors } from '../errors/index.js'
import { faultConfigSchema } from './faults.js'
import type { SimOptions } from './options.js'

/**
 * The emulator's configuration as a file (YAML or JSON, `kvgate sim --config FILE`) and as `startSim`
 * options: one schema for both, so a typo in either is refused with the field's name instead of being
 * silently ignored.
 */
const positiveInteger = { type: 'integer', minimum: 1 } as const
const nonNegative = { type: 'number', minimum: 0 } as const

export const simOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    host: { type: 'string', minLength: 1 },
    model: { type: 'string', minLength: 1 },
    servedModelName: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
    models: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', minLength: 1 } },
    loraModules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'path'],
        properties: {
          name: { type: 'string', minLength: 1 },
          path: { type: 'string', minLength: 1 },
          baseModelName: { type: 'string', minLength: 1 },
        },
      },
    },
    enableLora: { type: 'boolean' },
    numGpuBlocks: { type: 'integer', minimum: 2 },
    numGpuBlocksOverride: { type: 'integer', minimum: 2 },
    gpuMemoryUtilization: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    kvOffloadingSize: { type: 'number', exclusiveMinimum: 0 },
    kvOffloadingBackend: { enum: ['native'] },
    numCpuBlocks: positiveInteger,
    kvBytesPerToken: positiveInteger,
    kvTransferConfig: {
      type: 'object',
      additionalProperties: false,
      required: ['kv_connector'],
      properties: {
        kv_connector: { enum: ['OffloadingConnector'] },
        kv_role: { enum: ['kv_both'] },
        kv_connector_extra_config: {
          type: 'object',
          additionalProperties: false,
          properties: {
            num_cpu_blocks: positiveInteger,
            cpu_bytes_to_use: { type: 'number', exclusiveMinimum: 0 },
            eviction_policy: { enum: ['lru'] },
          },
        },
      },
    },
    kvOffloadingLoadMsPerBlock: nonNegative,
    blockSize: positiveInteger,
    maxNumSeqs: positiveInteger,
    maxNumBatchedTokens: positiveInteger,
    maxModelLen: { type: 'integer', minimum: 2 },
    speed: { type: 'number', exclusiveMinimum: 0 },
    seed: { type: 'integer' },
    metricsCompat: { enum: ['v1', 'v0'] },
    enablePrefixCaching: { type: 'boolean' },
    latency: {
      type: 'object',
      additionalProperties: false,
      properties: {
        stepFixedMs: nonNegative,
        prefillTokenMs: nonNegative,
        runningSeqMs: nonNegative,
        contextTokenMs: nonNegative,
      },
    },
    outputLength: {
      type: 'object',
      required: ['type'],
      properties: { type: { enum: ['constant', 'uniform', 'lognormal'] } },
      // The branch is picked by `type`, so errors are that branch's alone.
      discriminator: { propertyName: 'type' },
      oneOf: [
        {
          additionalProperties: false,
          required: ['value'],
          properties: { type: { const: 'constant' }, value: positiveInteger },
        },
        {
          additionalProperties: false,
          required: ['min', 'max'],
          properties: { type: { const: 'uniform' }, min: positiveInteger, max: positiveInteger },
          crossField: [atMost('min', 'max')],
        },
        {
          additionalProperties: false,
          required: ['average'],
          properties: {
            type: { const: 'lognormal' },
            average: { type: 'number', exclusiveMinimum: 0 },
            medianRatio: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
            max: positiveInteger,
          },
        },
      ],
    },
    faults: faultConfigSchema,
    // `startSim` also takes a pino logger; it is not a file setting and is checked by the type system.
    logger: {},
  },
} as const

const validate = compile(simOptionsSchema)

/** Validate emulator options; throws `errors.invalidConfig` naming every bad field. */
export function validateSimOptions(raw: unknown, source = 'sim options'): SimOptions {
  const problems = check(validate, raw)
  if (problems.length > 0) throw errors.invalidConfig([`${source}: ${problems.map(formatProblem).join('; ')}`])
  return raw as SimOptions
}

/** Read a YAML or JSON file of emulator options (YAML is a superset of JSON, so one parser reads both). */
export function loadSimConfigFile(path: string): SimOptions {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (cause) {
    throw errors.invalidConfig([`${path}: cannot read the file (${(cause as Error).message})`], { cause })
  }
  let raw: unknown
  try {
    raw = parseYaml(text) ?? {}
  } catch (cause) {
    throw errors.invalidConfig([`${path}: not valid YAML/JSON (${(cause as Error).message})`], { cause })
  }
  return validateSimOptions(raw, path)
}
