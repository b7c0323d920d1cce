import { readFileSync } from 'node:fs'
import { LineCounter, parseDocument } from 'yaml'
import { check, compile, formatProblem, redactSecrets, secretValues, type ValidationProblem } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { PolicyUser } from '../policies/index.js'
import { type ConfigOverrides, envOverrides, isPlainObject, type Layers, mergeLayer, sourceOf } from './layers.js'
import { configSchema, type KvgateConfig, type UserConfig } from './schema.js'

const validateSchema = compile(configSchema)

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

/**
 * What JSON Schema cannot say, done before validation so the rules see the result: a backend's trailing `/`
 * is dropped and a missing name becomes `vllm-<index>` (so `http://a/` and `http://a` are duplicates, and a
 * configured `vllm-1` clashes with a defaulted one).
 */
function normaliseBackends(data: unknown): void {
  if (!isPlainObject(data) || !Array.isArray(data['backends'])) return
  data['backends'].forEach((backend: unknown, i) => {
    if (!isPlainObject(backend)) return
    if (typeof backend['url'] === 'string') backend['url'] = backend['url'].replace(/\/+$/, '')
    backend['name'] ??= `vllm-${i}`
  })
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

/**
 * One `invalid_config` error listing every problem, each behind its source when it has one
 * (`config/kvgate.yaml: server.port: must be <= 65535; KVGATE_POLICY: policy.name: unknown policy "foo"`),
 * with every API key in sight masked, whatever part of the text it reached.
 */
function refuse(
  problems: readonly ValidationProblem[],
  source: (path: string) => string | undefined,
  secrets: Iterable<string>,
) {
  const lines = problems.map((problem) => {
    const from = source(problem.path)
    return from === undefined ? formatProblem(problem) : `${from}: ${formatProblem(problem)}`
  })
  return errors.invalidConfig([redactSecrets([...new Set(lines)].join('; '), secrets)])
}

function validate(
  raw: unknown,
  source: (path: string) => string | undefined,
  secrets: readonly string[],
): KvgateConfig {
  const data = structuredClone(raw ?? {}) as unknown
  normaliseBackends(data)
  const problems = check(validateSchema, data)
  if (problems.length > 0) throw refuse(problems, source, [...secrets, ...secretValues(configSchema, data)])
  return deepFreeze(data as KvgateConfig)
}

/**
 * Validate a raw config (parsed YAML, or an object in the same shape), fill defaults and deep-freeze it.
 * Throws `errors.invalidConfig` listing every problem as `field.path: reason`; an API key is never in it.
 */
export function parseConfig(raw: unknown): KvgateConfig {
  return validate(raw, () => undefined, [])
}

/** Read and parse the YAML file; its errors give the line and column but never the source text. */
function readYaml(path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw errors.invalidConfig([`${path}: cannot read: ${(err as Error).message}`], { cause: err })
  }
  const lineCounter = new LineCounter()
  // prettyErrors would quote the offending line, and that line may hold an API key.
  const doc = parseDocument(text, { prettyErrors: false, lineCounter })
  const [first] = doc.errors
  if (first !== undefined) {
    const { line, col } = lineCounter.linePos(first.pos[0])
    // The part of the file that did parse may still name keys the message could echo.
    let partial: unknown
    try {
      partial = doc.toJS()
    } catch {
      partial = undefined
    }
    const message = `${path}: not valid YAML: ${first.message} at line ${line}, column ${col}`
    throw errors.invalidConfig([redactSecrets(message, secretValues(configSchema, partial))])
  }
  const value = (doc.toJS() as unknown) ?? {}
  if (!isPlainObject(value)) throw errors.invalidConfig([`${path}: the top level must be a mapping`])
  return value
}

/**
 * Read the YAML file (if any), lay the environment and then `overrides` over it, and validate.
 * Precedence, lowest first: defaults, file, environment (`KVGATE_*`), overrides (command-line flags). Each
 * problem names where its field was set: the flag (`--policy`), the variable (`KVGATE_POLICY`) or the file.
 */
export function loadConfig(
  path?: string,
  overrides: ConfigOverrides = {},
  env: NodeJS.ProcessEnv = process.env,
): KvgateConfig {
  const layers: Layers = {
    file: path === undefined ? {} : readYaml(path),
    filePath: path,
    env: envOverrides(env),
    overrides,
  }
  const merged = mergeLayer(mergeLayer(layers.file, layers.env), layers.overrides)
  // Keys set in any layer, including ones a higher layer replaced: a message must not echo those either.
  const secrets = [layers.file, layers.env, layers.overrides].flatMap((layer) => secretValues(configSchema, layer))
  return validate(merged, (problemPath) => sourceOf(layers, problemPath), secrets)
}
