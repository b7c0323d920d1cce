import { Command, InvalidArgumentError, Option } from 'commander'
import pino from 'pino'
import { KvgateError } from '../errors/index.js'
import type { FaultConfig, SimOptions } from './options.js'
import { startSim } from './server.js'
import { loadSimConfigFile, validateSimOptions } from './sim-config.js'

const DEFAULT_CLI_PORT = 8000 // vLLM's default port

function integer(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got "${value}"`)
    return n
  }
}

function number(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value)
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${value}"`)
    return n
  }
}

/** SimOptions fields with a flag of the same name; a flag given wins over the config file. */
const SCALAR_FLAGS = [
  'host',
  'model',
  'numGpuBlocks',
  'blockSize',
  'maxNumSeqs',
  'maxNumBatchedTokens',
  'maxModelLen',
  'speed',
  'seed',
  'metricsCompat',
  'enablePrefixCaching',
] as const

type SimFlags = Pick<SimOptions, 'port' | (typeof SCALAR_FLAGS)[number]> & {
  config?: string
  // One per FaultConfig field, named `--fault-*` on the command line (dieAfterMs takes no prefix).
  faultLatencySpikeRate?: number
  faultLatencySpikeMs?: number
  faultErrorRate?: number
  faultStreamCutRate?: number
  faultStreamErrorRate?: number
  faultEngineDead?: boolean
  faultMetricsUnavailable?: boolean
  faultMetricsDelayMs?: number
  dieAfterMs?: number
  logLevel: string
}

/** Flags over the file over the defaults. */
export function simOptionsFromFlags(flags: SimFlags): SimOptions {
  const file: SimOptions = flags.config !== undefined ? loadSimConfigFile(flags.config) : {}
  const faults: Partial<FaultConfig> = { ...file.faults }
  if (flags.faultLatencySpikeRate !== undefined) faults.latencySpikeRate = flags.faultLatencySpikeRate
  if (flags.faultLatencySpikeMs !== undefined) faults.latencySpikeMs = flags.faultLatencySpikeMs
  if (flags.faultErrorRate !== undefined) faults.errorRate = flags.faultErrorRate
  if (flags.faultStreamCutRate !== undefined) faults.streamCutRate = flags.faultStreamCutRate
  if (flags.faultStreamErrorRate !== undefined) faults.streamErrorRate = flags.faultStreamErrorRate
  if (flags.faultEngineDead !== undefined) faults.engineDead = flags.faultEngineDead
  if (flags.faultMetricsUnavailable !== undefined) faults.metricsUnavailable = flags.faultMetricsUnavailable
  if (flags.faultMetricsDelayMs !== undefined) faults.metricsDelayMs = flags.faultMetricsDelayMs
  if (flags.dieAfterMs !== undefined) faults.dieAfterMs = flags.dieAfterMs
  const options: SimOptions = { ...file, faults, port: flags.port ?? file.port ?? DEFAULT_CLI_PORT }
  for (const key of SCALAR_FLAGS) {
    if (flags[key] !== undefined) (options as Record<string, unknown>)[key] = flags[key]
  }
  return validateSimOptions(options, 'kvgate sim')
}

/** `kvgate sim`: serve the vLLM emulator until SIGINT/SIGTERM. */
export function createSimCommand(): Command {
  return new Command('sim')
    .description('Run the vLLM emulator: OpenAI API, SSE, /metrics, KV block pool, batching, preemption, prefix cache')
    .option('--port <port>', `port to listen on (default ${DEFAULT_CLI_PORT})`, integer('--port'))
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--model <name>', 'served model name (default kvgate-sim)')
    .option('--num-gpu-blocks <n>', 'KV cache blocks (default 4096)', integer('--num-gpu-blocks'))
    .option('--block-size <tokens>', 'tokens per KV block (default 16)', integer('--block-size'))
    .option('--max-num-seqs <n>', 'sequences per batch (default 256)', integer('--max-num-seqs'))
    .option(
      '--max-num-batched-tokens <n>',
      'tokens per engine step (default 8192)',
      integer('--max-num-batched-tokens'),
    )
    .option(
      '--max-model-len <tokens>',
      'context length (default 8192, capped to the KV cache)',
      integer('--max-model-len'),
    )
    .option('--speed <x>', 'emulated time runs x times faster than real time (default 1)', number('--speed'))
    .option('--seed <s>', 'seed for output lengths and text (default 0)', integer('--seed'))
    .option('--config <file>', 'YAML/JSON file: any option in camelCase, plus latency, outputLength and faults')
    .addOption(
      new Option('--metrics-compat <version>', 'v0 emits vllm:gpu_cache_usage_perc (pre-0.10 name)').choices([
        'v1',
        'v0',
      ]),
    )
    .option('--no-enable-prefix-caching', 'disable prefix caching')
    .option('--fault-latency-spike-rate <p>', 'probability an engine step stalls', number('--fault-latency-spike-rate'))
    .option('--fault-latency-spike-ms <ms>', 'how long a stalled step stalls', number('--fault-latency-spike-ms'))
    .option('--fault-error-rate <p>', 'share of requests answered 500', number('--fault-error-rate'))
    .option('--fault-stream-cut-rate <p>', 'share of streams cut mid-way', number('--fault-stream-cut-rate'))
    .option(
      '--fault-stream-error-rate <p>',
      'share of streams ending mid-way with an SSE error event',
      number('--fault-stream-error-rate'),
    )
    .option('--fault-engine-dead', '/health answers 503 and generation 500')
    .option('--fault-metrics-unavailable', '/metrics answers 500')
    .option('--fault-metrics-delay-ms <ms>', '/metrics answers this late', number('--fault-metrics-delay-ms'))
    .option('--die-after-ms <ms>', 'exit with status 1 this long after start', number('--die-after-ms'))
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (flags: SimFlags, command: Command) => {
      // commander sets `enablePrefixCaching: true` by default for a `--no-` flag; only an explicit flag counts.
      if (command.getOptionValueSource('enablePrefixCaching') === 'default') delete flags.enablePrefixCaching
      let options: SimOptions
      try {
        options = simOptionsFromFlags(flags)
      } catch (err) {
        if (err instanceof KvgateError) command.error(err.message, { exitCode: 2 })
        throw err
      }
      const logger = pino({ name: 'kvgate-sim', level: flags.logLevel })
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
