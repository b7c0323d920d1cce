import { readFileSync } from 'node:fs'
import { Ajv, type ErrorObject } from 'ajv'
import { parse as parseYaml } from 'yaml'
import { errors, KvgateError } from '../errors/index.js'
import { policyFactories, policyNames, type PolicyUser } from '../policies/index.js'
import { configSchema, type KvgateConfig, type UserConfig } from './schema.js'

/**
 * Overrides laid over the file, in the file's own shape (flags and tests use it):
 * `{ server: { port: 9000 }, backends: [{ url }], policy: { name: 'vtc' } }`. Objects merge, arrays replace.
 */
export type ConfigOverrides = Readonly<Record<string, unknown>>

/** Environment variables kvgate reads, and where each lands in the config. */
export const ENV_OVERRIDES = Object.freeze({
  KVGATE_HOST: 'server.host',
  KVGATE_PORT: 'server.port',
  KVGATE_BACKENDS: 'backends (comma-separated URLs)',
  KVGATE_POLICY: 'policy.name',
  KVGATE_LOG_LEVEL: 'telemetry.logLevel',
})

// One compiled validator per process is fine: it holds no state between calls.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true })
const validate = ajv.compile(configSchema)

function describeAjvError(error: ErrorObject): string {
  const path = error.instancePath.replace(/^\//, '').replaceAll('/', '.') || '(root)'
  if (error.keyword === 'additionalProperties') {
    const field = (error.params as { additionalProperty: string }).additionalProperty
    return `${path === '(root)' ? '' : `${path}.`}${field}: unknown field`
  }
  if (error.keyword === 'enum') {
    const allowed = (error.params as { allowedValues: unknown[] }).allowedValues
    return `${path}: must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
  }
  if (error.keyword === 'required') {
    const field = (error.params as { missingProperty: string }).missingProperty
    return `${path === '(root)' ? '' : `${path}.`}${field}: is required`
  }
  return `${path}: ${error.message ?? 'is invalid'}`
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Objects merge key by key; anything else (arrays included) in `over` replaces what `base` had. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) out[key] = deepMerge(base[key], value)
  return out
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

/** Laying a different policy name over the file drops the file's options: they belong to the old policy. */
function mergeLayer(base: unknown, layer: unknown): unknown {
  const merged = deepMerge(base, layer)
  if (isPlainObject(base) && isPlainObject(layer) && isPlainObject(layer['policy']) && isPlainObject(merged)) {
    const basePolicy = isPlainObject(base['policy']) ? base['policy'] : {}
    const layerPolicy = layer['policy']
    const renamed = layerPolicy['name'] !== undefined && layerPolicy['name'] !== basePolicy['name']
    if (renamed && layerPolicy['options'] === undefined) {
      merged['policy'] = { name: layerPolicy['name'], options: {} }
    }
  }
  return merged
}

/** The environment's overrides, in the file's shape. Only this module reads the environment. */
export function envOverrides(env: NodeJS.ProcessEnv): ConfigOverrides {
  const out: Record<string, Record<string, unknown> | unknown[]> = {}
  const problems: string[] = []
  if (env['KVGATE_HOST']) out['server'] = { host: env['KVGATE_HOST'] }
  if (env['KVGATE_PORT']) {
    const port = Number(env['KVGATE_PORT'])
    if (!Number.isInteger(port)) problems.push(`KVGATE_PORT: must be an integer, got "${env['KVGATE_PORT']}"`)
    out['server'] = { ...(out['server'] as object | undefined), port }
  }
  if (env['KVGATE_BACKENDS']) {
    out['backends'] = env['KVGATE_BACKENDS']
      .split(',')
      .map((url) => url.trim())
      .filter((url) => url.length > 0)
      .map((url) => ({ url }))
  }
  if (env['KVGATE_POLICY']) out['policy'] = { name: env['KVGATE_POLICY'] }
  if (env['KVGATE_LOG_LEVEL']) out['telemetry'] = { logLevel: env['KVGATE_LOG_LEVEL'] }
  if (problems.length > 0) throw errors.invalidConfig([problems.join('; ')])
  return out
}

/** A configured user (or the default user's settings under another name) as policies see it. */
export function toPolicyUser(name: string, settings: Omit<UserConfig, 'name'>): PolicyUser {
  return {
    name,
    weight: settings.weight,
    ...(settings.tokensPerMinute === null ? {} : { tokensPerMinute: settings.tokensPerMinute }),
    ...(settings.requestsPerMinute === null ? {} : { requestsPerMinute: settings.requestsPerMinute }),
  }
}

function semanticProblems(config: KvgateConfig): string[] {
  const problems: string[] = []
  const seen = (values: readonly string[], path: string): void => {
    const counts = new Set<string>()
    values.forEach((value, i) => {
      if (counts.has(value)) problems.push(`${path}[${i}]: duplicate "${value}"`)
      counts.add(value)
    })
  }
  seen(
    config.backends.map((b) => b.name),
    'backends.name',
  )
  seen(
    config.backends.map((b) => b.url),
    'backends.url',
  )
  seen(
    config.users.map((u) => u.name),
    'users.name',
  )
  seen(
    config.identity.apiKeys.map((k) => k.key),
    'identity.apiKeys.key',
  )
  if (config.admission.maxDeadlineMs < config.admission.defaultDeadlineMs) {
    problems.push('admission.maxDeadlineMs: must be >= admission.defaultDeadlineMs')
  }
  if (config.identity.order.length === 0 && config.identity.requireAuth) {
    problems.push('identity.order: must name at least one source when identity.requireAuth is true')
  }
  return problems
}

/** Build the chosen policy once, so its own option checks run at load time and name `policy.options`. */
function policyProblems(config: KvgateConfig): string[] {
  const factory = policyFactories[config.policy.name]
  if (factory === undefined) {
    return [`policy.name: unknown policy "${config.policy.name}" (valid: ${policyNames().join(', ')})`]
  }
  try {
    factory({ users: config.users.map((u) => toPolicyUser(u.name, u)), options: config.policy.options })
    return []
  } catch (err) {
    // Policies name the field themselves (`policy.options.wOut: …`); anything else gets the section's name.
    if (err instanceof KvgateError && err.code === errors.invalidPolicyOptions.code) return [err.message]
    return [`policy.options: ${err instanceof Error ? err.message : String(err)}`]
  }
}

/**
 * Validate a raw config (parsed YAML, or an object in the same shape), fill defaults and deep-freeze it.
 * Throws `errors.invalidConfig` listing every problem as `field.path: reason`.
 */
export function parseConfig(raw: unknown): KvgateConfig {
  const data = structuredClone(raw ?? {}) as unknown
  if (!validate(data)) {
    const problems = (validate.errors ?? []).map(describeAjvError)
    throw errors.invalidConfig([[...new Set(problems)].join('; ')])
  }
  const config = data as unknown as { backends: { url: string; name?: string }[] }
  config.backends.forEach((backend, i) => {
    backend.url = backend.url.replace(/\/+$/, '')
    backend.name ??= `vllm-${i}`
  })
  const typed = config as unknown as KvgateConfig
  const problems = [...semanticProblems(typed), ...policyProblems(typed)]
  if (problems.length > 0) throw errors.invalidConfig([problems.join('; ')])
  return deepFreeze(typed)
}

/**
 * Read the YAML file (if any), lay the environment and then `overrides` over it, and validate.
 * Precedence, lowest first: defaults, file, environment (`KVGATE_*`), overrides (command-line flags).
 */
export function loadConfig(
  path?: string,
  overrides: ConfigOverrides = {},
  env: NodeJS.ProcessEnv = process.env,
): KvgateConfig {
  let fromFile: unknown = {}
  if (path !== undefined) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw errors.invalidConfig([`${path}: cannot read: ${(err as Error).message}`], { cause: err })
    }
    try {
      fromFile = parseYaml(text) ?? {}
    } catch (err) {
      throw errors.invalidConfig([`${path}: not valid YAML: ${(err as Error).message}`], { cause: err })
    }
    if (!isPlainObject(fromFile)) throw errors.invalidConfig([`${path}: the top level must be a mapping`])
  }
  const merged = mergeLayer(mergeLayer(fromFile, envOverrides(env)), overrides)
  try {
    return parseConfig(merged)
  } catch (err) {
    if (err instanceof KvgateError && path !== undefined) {
      throw errors.invalidConfig([`${path}: ${err.message.replace(/^Invalid configuration: /, '')}`], { cause: err })
    }
    throw err
  }
}
