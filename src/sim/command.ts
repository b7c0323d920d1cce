import { Command } from 'commander'
import pino from 'pino'
import { KvgateError } from '../errors/index.js'
import { checkSimOptionCombinations } from './option-checks.js'
import type { SimOptions } from './options.js'
import { startSim } from './server.js'
import { loadSimConfigFile, validateSimOptions } from './sim-config.js'
import { addSimOptions, collectSimOptions } from './sim-flags.js'

const DEFAULT_CLI_PORT = 8000 // vLLM's default port

/** What commander hands the action: the emulator's options by attribute name, plus the CLI's own. */
export type SimFlags = Record<string, unknown> & { config?: string; logLevel?: string }

/** Flags over the file over the defaults; `faults` and `latency` merge field by field. */
export function simOptionsFromFlags(flags: SimFlags): SimOptions {
  const file: SimOptions = flags.config !== undefined ? loadSimConfigFile(flags.config) : {}
  const given = collectSimOptions(flags)
  const options: SimOptions = {
    ...file,
    ...given,
    port: given.port ?? file.port ?? DEFAULT_CLI_PORT,
    faults: { ...file.faults, ...given.faults },
  }
  if (file.latency !== undefined || given.latency !== undefined) options.latency = { ...file.latency, ...given.latency }
  return checkSimOptionCombinations(validateSimOptions(options, 'kvgate sim'), 'kvgate sim')
}

/** `kvgate sim`: serve the vLLM emulator until SIGINT/SIGTERM. */
export function createSimCommand(): Command {
  const command = new Command('sim').description(
    'Run the vLLM emulator: OpenAI API, SSE, /metrics, KV block pool, batching, preemption, prefix cache, CPU tier',
  )
  addSimOptions(command)
  return command
    .option('--config <file>', 'YAML/JSON file: any option in camelCase, plus latency, outputLength and faults')
    .option('--log-level <level>', 'pino log level: info logs start-up and errors, debug one line per request', 'info')
    .action(async (flags: SimFlags, self: Command) => {
      let options: SimOptions
      try {
        options = simOptionsFromFlags(flags)
      } catch (err) {
        if (err instanceof KvgateError) self.error(err.message, { exitCode: 2 })
        throw err
      }
      const logger = pino({ name: 'kvgate-sim', level: flags.logLevel ?? 'info' })
      const sim = await startSim({ ...options, logger }, { onDie: () => process.exit(1) })
      const { port: _port, logger: _logger, ...shown } = options
      logger.info({ url: sim.url, ...shown }, 'kvgate sim listening')
      const stop = (): void => {
        void sim.close().then(() => process.exit(0))
      }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    })
}
