import { existsSync } from 'node:fs'
import { type Command, InvalidArgumentError } from 'commander'
import type { ConfigOverrides } from '../config/index.js'

export const DEFAULT_CONFIG_PATH = 'config/kvgate.yaml'

function parsePort(value: string): number {
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be 0–65535')
  return port
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

/**
 * A number when the text is one, else the text: the schema then refuses it naming the flag
 * (`--deadline-ms: admission.defaultDeadlineMs: must be integer`), like every other bad value.
 */
function numberOrText(value: string): number | string {
  const text = value.trim()
  return text !== '' && Number.isFinite(Number(text)) ? Number(text) : text
}

/** The flags `kvgate serve`, `kvgate config check` and `kvgate reload` share, as commander gives them. */
export interface ConfigFlags {
  config: string
  port?: number
  host?: string
  adminPort?: number
  adminHost?: string
  backend: string[]
  policy?: string
  routing?: string
  logLevel?: string
  deadlineMs?: number | string
  maxQueue?: number | string
  headroom?: number | string
  quantile?: number | string
}

/**
 * Add the config flags to a command. Each sets one field over the file and the environment, and is listed in
 * `FLAG_OVERRIDES` (src/config/layers.ts) so an error in that field names the flag.
 */
export function addConfigFlags(command: Command): Command {
  return command
    .option('-c, --config <path>', 'YAML config file (missing default file = built-in defaults)', DEFAULT_CONFIG_PATH)
    .option('-p, --port <port>', 'listen port (overrides server.port)', parsePort)
    .option('--host <host>', 'listen address (overrides server.host)')
    .option('--admin-port <port>', 'admin listener port: /metrics, /debug (overrides admin.port)', parsePort)
    .option('--admin-host <host>', 'admin listener address, loopback by default (overrides admin.host)')
    .option(
      '-b, --backend <url>',
      'vLLM base URL (its root, no /v1), repeatable (replaces backends); none = built-in emulator',
      collect,
      [],
    )
    .option('--policy <name>', 'admission policy: fifo, tpm, vtc, dynamic-tpm (overrides policy.name)')
    .option('--routing <name>', 'backend choice: most-room, round-robin, prefix-aware (overrides routing.name)')
    .option('--deadline-ms <ms>', 'default queue deadline (overrides admission.defaultDeadlineMs)', numberOrText)
    .option('--max-queue <n>', 'requests waiting across all users (overrides admission.maxQueueLength)', numberOrText)
    .option('--headroom <ratio>', 'share of KV never handed out, 0–1 (overrides admission.headroomRatio)', numberOrText)
    .option(
      '--quantile <q>',
      'output-length quantile reserved per request (overrides predictor.quantile)',
      numberOrText,
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
}

/** Set `value` at `section.field` of `overrides` when the flag was given. */
function put(overrides: Record<string, Record<string, unknown>>, section: string, field: string, value: unknown): void {
  if (value === undefined) return
  overrides[section] = { ...overrides[section], [field]: value }
}

/** Flags in the config file's shape, laid over the file and the environment. */
export function flagOverrides(flags: ConfigFlags): ConfigOverrides {
  const overrides: Record<string, Record<string, unknown>> = {}
  put(overrides, 'server', 'port', flags.port)
  put(overrides, 'server', 'host', flags.host)
  put(overrides, 'admin', 'port', flags.adminPort)
  put(overrides, 'admin', 'host', flags.adminHost)
  put(overrides, 'policy', 'name', flags.policy)
  put(overrides, 'routing', 'name', flags.routing)
  put(overrides, 'admission', 'defaultDeadlineMs', flags.deadlineMs)
  put(overrides, 'admission', 'maxQueueLength', flags.maxQueue)
  put(overrides, 'admission', 'headroomRatio', flags.headroom)
  put(overrides, 'predictor', 'quantile', flags.quantile)
  put(overrides, 'telemetry', 'logLevel', flags.logLevel)
  const out: Record<string, unknown> = { ...overrides }
  if (flags.backend.length > 0) out['backends'] = flags.backend.map((url) => ({ url }))
  return out
}

/**
 * The config file to read: the one given, or the default one when it exists (a missing default file means
 * the built-in defaults, not an error).
 */
export function configPathOf(flags: ConfigFlags, command: Command): string | undefined {
  const explicit = command.getOptionValueSource('config') !== 'default'
  return explicit || existsSync(flags.config) ? flags.config : undefined
}
