import { existsSync } from 'node:fs'
import { Command, InvalidArgumentError } from 'commander'
import { createConfigWatcher, loadConfig, type ConfigOverrides, type KvgateConfig } from '../config/index.js'
import { KvgateError } from '../errors/index.js'
import { createGateway, type Gateway } from './create-gateway.js'
import { isGatewayWorker, runWorkerGroup } from './workers.js'

const DEFAULT_CONFIG_PATH = 'config/kvgate.yaml'

function parsePort(value: string): number {
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be 0–65535')
  return port
}

function parseWorkers(value: string): number {
  const workers = Number(value)
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw new InvalidArgumentError('must be 1–256')
  return workers
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

interface ServeFlags {
  config: string
  port?: number
  host?: string
  adminPort?: number
  adminHost?: string
  backend: string[]
  policy?: string
  routing?: string
  logLevel?: string
  workers: number
}

/** Flags in the config file's shape, laid over the file and the environment. */
function flagOverrides(flags: ServeFlags): ConfigOverrides {
  const overrides: Record<string, unknown> = {}
  const server: Record<string, unknown> = {}
  if (flags.port !== undefined) server['port'] = flags.port
  if (flags.host !== undefined) server['host'] = flags.host
  if (Object.keys(server).length > 0) overrides['server'] = server
  const admin: Record<string, unknown> = {}
  if (flags.adminPort !== undefined) admin['port'] = flags.adminPort
  if (flags.adminHost !== undefined) admin['host'] = flags.adminHost
  if (Object.keys(admin).length > 0) overrides['admin'] = admin
  if (flags.backend.length > 0) overrides['backends'] = flags.backend.map((url) => ({ url }))
  if (flags.policy !== undefined) overrides['policy'] = { name: flags.policy }
  if (flags.routing !== undefined) overrides['routing'] = { name: flags.routing }
  if (flags.logLevel !== undefined) overrides['telemetry'] = { logLevel: flags.logLevel }
  return overrides
}

/**
 * `kvgate serve`: the gateway as a process. Owns what a library must not: reading the config path, process
 * signals (SIGHUP reloads; SIGTERM/SIGINT shut down gracefully, a second one exits at once) and the exit code.
 */
export function createServeCommand(): Command {
  return new Command('serve')
    .description('Run the KV-cache-aware admission gateway in front of one or more vLLM servers')
    .option('-c, --config <path>', 'YAML config file (missing default file = built-in defaults)', DEFAULT_CONFIG_PATH)
    .option('-p, --port <port>', 'listen port (overrides server.port)', parsePort)
    .option('--host <host>', 'listen address (overrides server.host)')
    .option('--admin-port <port>', 'admin listener port: /metrics, /debug (overrides admin.port)', parsePort)
    .option('--admin-host <host>', 'admin listener address, loopback by default (overrides admin.host)')
    .option(
      '-b, --backend <url>',
      'vLLM base URL, repeatable (replaces backends); none = built-in emulator',
      collect,
      [],
    )
    .option('--policy <name>', 'admission policy: fifo, tpm, vtc, dynamic-tpm (overrides policy.name)')
    .option('--routing <name>', 'backend choice: most-room, round-robin, prefix-aware (overrides routing.name)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .option(
      '-w, --workers <n>',
      'gateway processes sharing the port and the state store (N > 1 needs state.store: redis)',
      parseWorkers,
      1,
    )
    .action(async (flags: ServeFlags, command: Command) => {
      const explicitConfig = command.getOptionValueSource('config') !== 'default'
      const path = explicitConfig || existsSync(flags.config) ? flags.config : undefined
      let overrides = flagOverrides(flags)
      let config: KvgateConfig
      try {
        config = loadConfig(path, overrides)
      } catch (err) {
        process.stderr.write(`kvgate serve: ${err instanceof KvgateError ? err.message : String(err)}\n`)
        process.exitCode = 1
        return
      }
      if (flags.workers > 1) {
        // Workers that shared nothing would each hand out every backend's whole cache.
        const refusal =
          config.state.store !== 'redis'
            ? '--workers N needs state.store: redis (the workers share their ledger, quotas and fairness there)'
            : config.backends.length === 0
              ? '--workers N needs backends: each worker would start an emulator of its own'
              : undefined
        if (refusal !== undefined) {
          process.stderr.write(`kvgate serve: ${refusal}\n`)
          process.exitCode = 1
          return
        }
        if (!isGatewayWorker()) {
          runWorkerGroup({ count: flags.workers, log: (message) => process.stderr.write(`${message}\n`) })
          return
        }
        // N workers on this host at least: degraded mode's 1/N share counts them before Redis has.
        if (config.state.expectedReplicas < flags.workers) {
          overrides = { ...overrides, state: { expectedReplicas: flags.workers } }
          config = loadConfig(path, overrides)
        }
      }

      let gateway: Gateway | undefined
      try {
        gateway = await createGateway({ config })
        await gateway.listen()
      } catch (err) {
        // A taken port or an emulator that cannot start: say so plainly and leave nothing running.
        process.stderr.write(`kvgate serve: cannot start: ${err instanceof Error ? err.message : String(err)}\n`)
        await gateway?.close().catch(() => undefined)
        process.exitCode = 1
        return
      }
      const { logger } = gateway
      logger.info({ config: path ?? '(defaults)', policy: config.policy.name }, 'config loaded')

      const watcher =
        path === undefined
          ? undefined
          : createConfigWatcher({
              path,
              overrides,
              onReload: (next) => {
                try {
                  gateway.reload(next)
                } catch (err) {
                  logger.error({ err }, 'config reload failed; the old config stays')
                }
              },
              onError: (err) => logger.error({ error: err.message }, 'config refused; the old config stays'),
            })
      process.on('SIGHUP', () => {
        logger.info('SIGHUP: reloading config')
        if (watcher === undefined) logger.warn('no config file to reload')
        else watcher.reload()
      })

      let stopping = false
      const stop = (signal: string): void => {
        if (stopping) {
          logger.warn({ signal }, 'second signal: exiting now')
          process.exit(1)
        }
        stopping = true
        logger.info({ signal }, 'stopping')
        watcher?.close()
        gateway.close().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed')
            process.exit(1)
          },
        )
      }
      process.on('SIGTERM', () => stop('SIGTERM'))
      process.on('SIGINT', () => stop('SIGINT'))
    })
}
