import { SIM_DEFAULTS } from './options.js'

/**
 * Every `kvgate sim` option as data: its flag, type, default and help. The CLI is built from this list
 * (`command.ts`), and so can any other command that starts the emulator and wants to pass its options through
 * (`kvgate bench compare`): `addSimOptions` registers them (optionally prefixed), `collectSimOptions` turns
 * the parsed values back into `SimOptions`.
 *
 * `key` is where the value goes in `SimOptions`: a field, or `group.field` for `faults` and `latency`.
 * `default` is what applies when the flag is absent, in the option's own unit; null where there is none (the
 * option is off, or derived from others: the help says how).
 */
export type SimOptionType =
  /** `<n>`: a whole number. */
  | 'integer'
  /** `<x>`: a finite number. */
  | 'number'
  | 'string'
  /** A switch without a value. */
  | 'boolean'
  /** `a,b,c`: one value, comma-separated. */
  | 'list'
  /** `a b c`: several values after one flag, as vLLM's `nargs="+"`. */
  | 'variadic'
  | 'choice'
  /** `name=path` or vLLM's JSON form, several after one flag. */
  | 'lora-modules'
  /** `key=value`, the flag repeated once per pair; values kept as strings. */
  | 'labels'
  /** `name=value`, the flag repeated once per pair; a number, `NaN`, `+Inf` or `-Inf`. */
  | 'metric-values'
  /** A JSON value. */
  | 'json'

export interface SimOptionDefinition {
  readonly key: string
  readonly flag: `--${string}`
  /** The value's placeholder in `--help`; null for a switch. */
  readonly valueName: string | null
  readonly type: SimOptionType
  readonly choices?: readonly string[]
  /** A switch that also has `--no-<name>` (vLLM's `--enable-prefix-caching` / `--no-enable-prefix-caching`). */
  readonly negatable?: boolean
  readonly default: string | number | boolean | null
  /** True when the flag is vLLM's own spelling, so a vLLM command line works unchanged. */
  readonly vllm: boolean
  readonly help: string
}

const def = (d: SimOptionDefinition): SimOptionDefinition => Object.freeze(d)

export const SIM_OPTION_DEFINITIONS: readonly SimOptionDefinition[] = Object.freeze([
  // Serving.
  def({
    key: 'port',
    flag: '--port',
    valueName: '<port>',
    type: 'integer',
    default: 8000,
    vllm: true,
    help: 'port to listen on (startSim: 0, an ephemeral port)',
  }),
  def({
    key: 'host',
    flag: '--host',
    valueName: '<host>',
    type: 'string',
    default: SIM_DEFAULTS.host,
    vllm: true,
    help: 'address to listen on',
  }),
  def({
    key: 'model',
    flag: '--model',
    valueName: '<name>',
    type: 'string',
    default: SIM_DEFAULTS.model,
    vllm: true,
    help: 'the model; served under this name unless --served-model-name',
  }),
  def({
    key: 'servedModelName',
    flag: '--served-model-name',
    valueName: '<names...>',
    type: 'variadic',
    default: null,
    vllm: true,
    help: 'aliases of the one model: requests may use any, responses and metrics carry the first',
  }),
  def({
    key: 'models',
    flag: '--models',
    valueName: '<a,b>',
    type: 'list',
    default: null,
    vllm: false,
    help: 'several distinct models sharing the KV pool, each answering under its own name',
  }),
  def({
    key: 'loraModules',
    flag: '--lora-modules',
    valueName: '<name=path...>',
    type: 'lora-modules',
    default: null,
    vllm: true,
    help: 'LoRA adapters listed in /v1/models (name=path or {"name","path","base_model_name"})',
  }),
  def({
    key: 'enableLora',
    flag: '--enable-lora',
    valueName: null,
    type: 'boolean',
    default: false,
    vllm: true,
    help: 'accepted for vLLM command lines; adapters are served whenever listed',
  }),
  def({
    key: 'maxModelLen',
    flag: '--max-model-len',
    valueName: '<tokens>',
    type: 'integer',
    default: SIM_DEFAULTS.maxModelLen,
    vllm: true,
    help: 'context length, capped to what the KV cache holds',
  }),
  // The engine.
  def({
    key: 'numGpuBlocks',
    flag: '--num-gpu-blocks',
    valueName: '<n>',
    type: 'integer',
    default: SIM_DEFAULTS.numGpuBlocks,
    vllm: false,
    help: 'KV cache blocks',
  }),
  def({
    key: 'numGpuBlocksOverride',
    flag: '--num-gpu-blocks-override',
    valueName: '<n>',
    type: 'integer',
    default: null,
    vllm: true,
    help: 'KV cache blocks, as vLLM spells it (wins over --num-gpu-blocks)',
  }),
  def({
    key: 'blockSize',
    flag: '--block-size',
    valueName: '<tokens>',
    type: 'integer',
    default: SIM_DEFAULTS.blockSize,
    vllm: true,
    help: 'tokens per KV block',
  }),
  def({
    key: 'maxNumSeqs',
    flag: '--max-num-seqs',
    valueName: '<n>',
    type: 'integer',
    default: SIM_DEFAULTS.maxNumSeqs,
    vllm: true,
    help: 'sequences per batch',
  }),
  def({
    key: 'maxNumBatchedTokens',
    flag: '--max-num-batched-tokens',
    valueName: '<n>',
    type: 'integer',
    default: SIM_DEFAULTS.maxNumBatchedTokens,
    vllm: true,
    help: 'tokens per engine step',
  }),
  def({
    key: 'enablePrefixCaching',
    flag: '--enable-prefix-caching',
    valueName: null,
    type: 'boolean',
    negatable: true,
    default: SIM_DEFAULTS.enablePrefixCaching,
    vllm: true,
    help: 'prefix caching (--no-enable-prefix-caching turns it off)',
  }),
  def({
    key: 'gpuMemoryUtilization',
    flag: '--gpu-memory-utilization',
    valueName: '<fraction>',
    type: 'number',
    default: SIM_DEFAULTS.gpuMemoryUtilization,
    vllm: true,
    help: 'reported in vllm:cache_config_info; no effect (the pool is --num-gpu-blocks)',
  }),
  def({
    key: 'speed',
    flag: '--speed',
    valueName: '<x>',
    type: 'number',
    default: SIM_DEFAULTS.speed,
    vllm: false,
    help: 'emulated time runs x times faster than real time',
  }),
  def({
    key: 'seed',
    flag: '--seed',
    valueName: '<s>',
    type: 'integer',
    default: SIM_DEFAULTS.seed,
    vllm: true,
    help: 'seed for output lengths and text',
  }),
  def({
    key: 'metricsCompat',
    flag: '--metrics-compat',
    valueName: '<version>',
    type: 'choice',
    choices: ['v1', 'v0'],
    default: SIM_DEFAULTS.metricsCompat,
    vllm: false,
    help: 'v0 emits vllm:gpu_cache_usage_perc (the pre-0.10 name)',
  }),
  def({
    key: 'latency.stepFixedMs',
    flag: '--latency-step-fixed-ms',
    valueName: '<ms>',
    type: 'number',
    default: 8,
    vllm: false,
    help: 'step-time model: ms per engine step',
  }),
  def({
    key: 'latency.prefillTokenMs',
    flag: '--latency-prefill-token-ms',
    valueName: '<ms>',
    type: 'number',
    default: 0.03,
    vllm: false,
    help: 'step-time model: ms per prompt token computed',
  }),
  def({
    key: 'latency.runningSeqMs',
    flag: '--latency-running-seq-ms',
    valueName: '<ms>',
    type: 'number',
    default: 0.1,
    vllm: false,
    help: 'step-time model: ms per sequence in the batch',
  }),
  def({
    key: 'latency.contextTokenMs',
    flag: '--latency-context-token-ms',
    valueName: '<ms>',
    type: 'number',
    default: 0.00005,
    vllm: false,
    help: 'step-time model: ms per KV token the batch reads',
  }),
  def({
    key: 'outputLength',
    flag: '--output-length',
    valueName: '<json>',
    type: 'json',
    default: null,
    vllm: false,
    help: 'output-length distribution, e.g. {"type":"constant","value":64} (default lognormal, average 256)',
  }),
  // The CPU offloading tier.
  def({
    key: 'kvOffloadingSize',
    flag: '--kv-offloading-size',
    valueName: '<GiB>',
    type: 'number',
    default: null,
    vllm: true,
    help: 'CPU tier for KV blocks (off by default); blocks = GiB / (kv bytes per token × block size)',
  }),
  def({
    key: 'kvOffloadingBackend',
    flag: '--kv-offloading-backend',
    valueName: '<name>',
    type: 'choice',
    choices: ['native'],
    default: null,
    vllm: true,
    help: "vLLM's OffloadingConnector (native) is the one emulated",
  }),
  def({
    key: 'kvTransferConfig',
    flag: '--kv-transfer-config',
    valueName: '<json>',
    type: 'json',
    default: null,
    vllm: true,
    help: 'vLLM 0.11 spelling of the tier: {"kv_connector":"OffloadingConnector","kv_connector_extra_config":{"num_cpu_blocks":N}}',
  }),
  def({
    key: 'numCpuBlocks',
    flag: '--num-cpu-blocks',
    valueName: '<n>',
    type: 'integer',
    default: null,
    vllm: false,
    help: 'CPU tier in blocks, instead of --kv-offloading-size',
  }),
  def({
    key: 'kvBytesPerToken',
    flag: '--kv-bytes-per-token',
    valueName: '<bytes>',
    type: 'integer',
    default: SIM_DEFAULTS.kvBytesPerToken,
    vllm: false,
    help: 'KV bytes per token (default Llama-3.1-8B bf16; OPT-13B is 819200)',
  }),
  def({
    key: 'kvOffloadingLoadMsPerBlock',
    flag: '--kv-offloading-load-ms-per-block',
    valueName: '<ms>',
    type: 'number',
    default: null,
    vllm: false,
    help: "ms to load a block from the CPU tier (default: the block's bytes at 25 GB/s)",
  }),
  // Faults.
  def({
    key: 'faults.latencySpikeRate',
    flag: '--fault-latency-spike-rate',
    valueName: '<p>',
    type: 'number',
    default: 0,
    vllm: false,
    help: 'probability an engine step stalls',
  }),
  def({
    key: 'faults.latencySpikeMs',
    flag: '--fault-latency-spike-ms',
    valueName: '<ms>',
    type: 'number',
    default: 0,
    vllm: false,
    help: 'how long a stalled step stalls',
  }),
  def({
    key: 'faults.errorRate',
    flag: '--fault-error-rate',
    valueName: '<p>',
    type: 'number',
    default: 0,
    vllm: false,
    help: 'share of generation requests answered 500',
  }),
  def({
    key: 'faults.streamCutRate',
    flag: '--fault-stream-cut-rate',
    valueName: '<p>',
    type: 'number',
    default: 0,
    vllm: false,
    help: 'share of streams cut mid-way',
  }),
  def({
    key: 'faults.streamErrorRate',
    flag: '--fault-stream-error-rate',
    valueName: '<p>',
    type: 'number',
    default: 0,
    vllm: false,
    help: 'share of streams ending mid-way with an SSE error event',
  }),
  def({
    key: 'faults.engineDead',
    flag: '--fault-engine-dead',
    valueName: null,
    type: 'boolean',
    default: false,
    vllm: false,
    help: '/health answers 503 and generation 500; /metrics still answers',
  }),
  def({
    key: 'faults.metricsUnavailable',
    flag: '--fault-metrics-unavailable',
    valueName: null,
    type: 'boolean',
    default: false,
    vllm: false,
    help: '/metrics answers 500',
  }),
  def({
    key: 'faults.metricsDelayMs',
    flag: '--fault-metrics-delay-ms',
    valueName: '<ms>',
    type: 'number',
    default: 0,
    vllm: false,
    help: '/metrics answers this late (emulated ms)',
  }),
  def({
    key: 'faults.metricsOverrides',
    flag: '--fault-metric-override',
    valueName: '<name=value>',
    type: 'metric-values',
    default: null,
    vllm: false,
    help: '/metrics reports this value for the sample (repeatable; NaN, +Inf, -Inf allowed)',
  }),
  def({
    key: 'faults.cacheConfigLabels',
    flag: '--fault-cache-config-label',
    valueName: '<label=value>',
    type: 'labels',
    default: null,
    vllm: false,
    help: 'vllm:cache_config_info reports this label value (repeatable)',
  }),
  def({
    key: 'faults.metricsPadBytes',
    flag: '--fault-metrics-pad-bytes',
    valueName: '<bytes>',
    type: 'integer',
    default: 0,
    vllm: false,
    help: '/metrics padded with comment lines to this many bytes',
  }),
  def({
    key: 'faults.badGatewayHtmlRate',
    flag: '--fault-bad-gateway-html-rate',
    valueName: '<p>',
    type: 'number',
    default: 0,
    vllm: false,
    help: 'share of API requests answered 502 with an HTML page',
  }),
  def({
    key: 'faults.dieAfterMs',
    flag: '--die-after-ms',
    valueName: '<ms>',
    type: 'number',
    default: null,
    vllm: false,
    help: 'exit with status 1 this long after start',
  }),
])
