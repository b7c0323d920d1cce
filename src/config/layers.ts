/**
 * Where a setting came from. The config is built from layers, lowest first: built-in defaults, the file, the
 * environment (`KVGATE_*`), the overrides (command-line flags). An error names the layer that set the bad
 * field, so `KVGATE_POLICY=foo` reads `KVGATE_POLICY: policy.name: unknown policy "foo"`, not the file's name.
 */

/**
 * Overrides laid over the file, in the file's own shape (flags and tests use it):
 * `{ server: { port: 9000 }, backends: [{ url }], policy: { name: 'vtc' } }`. Objects merge, arrays replace.
 */
export type ConfigOverrides = Readonly<Record<string, unknown>>

/** Environment variables kvgate reads, and where each lands in the config. */
export const ENV_OVERRIDES = Object.freeze({
  KVGATE_HOST: 'server.host',
  KVGATE_PORT: 'server.port',
  KVGATE_ADMIN_HOST: 'admin.host',
  KVGATE_ADMIN_PORT: 'admin.port',
  KVGATE_BACKENDS: 'backends (comma-separated URLs)',
  KVGATE_POLICY: 'policy.name',
  KVGATE_ROUTING: 'routing.name',
  KVGATE_LOG_LEVEL: 'telemetry.logLevel',
  KVGATE_STATE_STORE: 'state.store',
  KVGATE_STATE_URL: 'state.url (a password in it stays out of the file: a Secret as environment)',
})

/**
 * `kvgate serve`'s (and `kvgate config check`'s) flags and the field each sets (src/gateway/config-flags.ts builds the overrides from
 * them; test/config checks the two agree). An error in a field an override set names the flag.
 */
export const FLAG_OVERRIDES = Object.freeze({
  '--host': 'server.host',
  '--port': 'server.port',
  '--admin-host': 'admin.host',
  '--admin-port': 'admin.port',
  '--backend': 'backends',
  '--policy': 'policy.name',
  '--routing': 'routing.name',
  '--deadline-ms': 'admission.defaultDeadlineMs',
  '--max-queue': 'admission.maxQueueLength',
  '--headroom': 'admission.headroomRatio',
  '--quantile': 'predictor.quantile',
  '--log-level': 'telemetry.logLevel',
})

/** What an override that no flag maps is called in errors. */
const OVERRIDES_SOURCE = 'command line'

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Objects merge key by key; anything else (arrays included) in `over` replaces what `base` had. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(over)) out[key] = deepMerge(base[key], value)
  return out
}

/**
 * Laying a different policy (or routing) name over the file drops the file's options: they belong to the old
 * policy (router).
 */
export function mergeLayer(base: unknown, layer: unknown): unknown {
  const merged = deepMerge(base, layer)
  if (!isPlainObject(base) || !isPlainObject(layer) || !isPlainObject(merged)) return merged
  for (const section of ['policy', 'routing']) {
    const layerSection = layer[section]
    if (!isPlainObject(layerSection)) continue
    const baseSection = isPlainObject(base[section]) ? base[section] : {}
    const renamed = layerSection['name'] !== undefined && layerSection['name'] !== baseSection['name']
    if (renamed && layerSection['options'] === undefined) merged[section] = { name: layerSection['name'], options: {} }
  }
  return merged
}

/** The environment's overrides, in the file's shape. Only this module reads the environment. */
export function envOverrides(env: NodeJS.ProcessEnv): ConfigOverrides {
  const out: Record<string, Record<string, unknown> | unknown[]> = {}
  if (env['KVGATE_HOST']) out['server'] = { host: env['KVGATE_HOST'] }
  // Not a number: kept as text, so the schema refuses it as `KVGATE_PORT: server.port: must be integer`.
  const portOf = (text: string): number | string => (/^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text.trim())
  if (env['KVGATE_PORT']) out['server'] = { ...(out['server'] as object | undefined), port: portOf(env['KVGATE_PORT']) }
  if (env['KVGATE_ADMIN_HOST']) out['admin'] = { host: env['KVGATE_ADMIN_HOST'] }
  if (env['KVGATE_ADMIN_PORT']) {
    out['admin'] = { ...(out['admin'] as object | undefined), port: portOf(env['KVGATE_ADMIN_PORT']) }
  }
  if (env['KVGATE_BACKENDS']) {
    out['backends'] = env['KVGATE_BACKENDS']
      .split(',')
      .map((url) => url.trim())
      .filter((url) => url.length > 0)
      .map((url) => ({ url }))
  }
  if (env['KVGATE_POLICY']) out['policy'] = { name: env['KVGATE_POLICY'] }
  if (env['KVGATE_ROUTING']) out['routing'] = { name: env['KVGATE_ROUTING'] }
  if (env['KVGATE_LOG_LEVEL']) out['telemetry'] = { logLevel: env['KVGATE_LOG_LEVEL'] }
  if (env['KVGATE_STATE_STORE']) out['state'] = { store: env['KVGATE_STATE_STORE'] }
  if (env['KVGATE_STATE_URL']) out['state'] = { ...(out['state'] as object | undefined), url: env['KVGATE_STATE_URL'] }
  return out
}

/**
 * Whether `layer` set the value at `path` (dotted), or a whole array or value above it: an array replaces the
 * one below it, so `KVGATE_BACKENDS` owns `backends.1.url`.
 */
function sets(layer: unknown, path: string): boolean {
  let node = layer
  for (const segment of path.split('.')) {
    if (!isPlainObject(node)) return node !== undefined && node !== layer
    if (!(segment in node)) return false
    node = node[segment]
  }
  return true
}

/** The name in `table` (name → field) whose field is `path` or contains it. */
function nameFor(table: Readonly<Record<string, string>>, path: string): string | undefined {
  const field = (f: string): string => f.replace(/ \(.*\)$/, '')
  return Object.entries(table).find(([, f]) => path === field(f) || path.startsWith(`${field(f)}.`))?.[0]
}

export interface Layers {
  readonly file: unknown
  readonly filePath: string | undefined
  readonly env: ConfigOverrides
  readonly overrides: ConfigOverrides
}

/** The highest layer that set `path` exactly (or an array or value above it). */
function setter(layers: Layers, path: string): string | undefined {
  if (sets(layers.overrides, path)) return nameFor(FLAG_OVERRIDES, path) ?? OVERRIDES_SOURCE
  if (sets(layers.env, path)) return nameFor(ENV_OVERRIDES, path) ?? 'environment'
  if (layers.filePath !== undefined && sets(layers.file, path)) return layers.filePath
  return undefined
}

/**
 * Which layer to blame for a problem at `path`: the highest one that set it (the flag's or the variable's
 * name, or the file); for a field nobody set (a rule broken by a default, `identity.apiKeys` empty while
 * `requireAuth` is on), the highest one that set something in the same object; else the file; else none.
 */
export function sourceOf(layers: Layers, path: string): string | undefined {
  const segments = path.split('.')
  for (let end = segments.length; end > 0; end--) {
    const found = setter(layers, segments.slice(0, end).join('.'))
    if (found !== undefined) return found
  }
  return layers.filePath
}
