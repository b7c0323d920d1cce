import { Command, InvalidArgumentError } from 'commander'
import { createConfigWatcher, loadConfig, type KvgateConfig } from '../config/index.js'
import { KvgateError } from '../errors/index.js'
import { addConfigFlags, type ConfigFlags, configPathOf, flagOverrides } from './config-flags.js'
import { createGateway, type Gateway } from './create-gateway.js'
import { type ReloadResult, reloadRoute } from './reload-route.js'
import { isGatewayWorker, runWorkerGroup } from './workers.js'

function parseWorkers(value: string): number {
  const workers = Number(value)
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw new InvalidArgumentError('must be 1–256')
  return workers
}

/**
 * `kvgate serve`: the gateway as a process. Owns what a library must not: reading the config path, process
 * signals (SIGHUP reloads; SIGTERM/SIGINT shut down gracefully, a second one exits at once) and the exit code.
 */
export function createServeCommand(): Command {
  return addConfigFlags(
    new Command('serve').description('Run the KV-cache-aware admission gateway in front of one or more vLLM servers'),
  )
    .option(
      '-w, --workers <n>',
      'gateway processes sharing the port and the state store (N > 1 needs state.store: redis)',
      parseWorkers,
      1,
    )
    .action(async (flags: ConfigFlags & { workers: number }, command: Command) => {
      const path = configPathOf(flags, command)
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

      // SIGHUP and the admin listener's POST /admin/reload both re-read the file through the watcher.
      let reload = (): ReloadResult => ({ reloaded: false, error: 'the gateway is still starting' })
      let gateway: Gateway | undefined
      try {
        gateway = await createGateway({ config, adminRoutes: [reloadRoute(() => reload())] })
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

      let lastFailure: string | undefined
      let needsRestart: readonly string[] = []
      const watcher =
        path === undefined
          ? undefined
          : createConfigWatcher({
              path,
              overrides,
              onReload: (next) => {
                try {
                  needsRestart = gateway.reload(next).needsRestart
                } catch (err) {
                  lastFailure = err instanceof Error ? err.message : String(err)
                  logger.error({ err }, 'config reload failed; the old config stays')
                }
              },
              onError: (err) => {
                lastFailure = err.message
                logger.error({ error: err.message }, 'config refused; the old config stays')
              },
            })
      reload = () => {
        if (watcher === undefined) {
          logger.warn('no config file to reload')
          return { reloaded: false, error: 'kvgate was started without a config file: there is nothing to reload' }
        }
        lastFailure = undefined
        const next = watcher.reload()
        if (next === undefined || lastFailure !== undefined) {
          return { reloaded: false, error: lastFailure ?? 'the config was refused' }
        }
        return { reloaded: true, config: next, needsRestart }
      }
      process.on('SIGHUP', () => {
        logger.info('SIGHUP: reloading config')
        reload()
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
