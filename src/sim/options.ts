import type pino from 'pino'

/**
 * The emulator's knobs. Names follow vLLM's engine arguments (`--num-gpu-blocks`, `--max-num-seqs`, …) in
 * camelCase; every default is a named constant with its unit, chosen to look like an 8B model on one H100.
 */

/**
 * Step-time model: one engine step (one forward pass over the scheduled batch) takes
 * `stepFixedMs + prefillTokenMs × prefill tokens + runningSeqMs × sequences in the batch
 *  + contextTokenMs × tokens held in KV by the batch`.
 * Defaults: a 1,000-token prompt alone takes ≈ 40 ms to its first token; a decode step at batch 64 with
 * 1k-token contexts takes ≈ 18 ms, at batch 128 ≈ 27 ms, at batch 256 ≈ 46 ms.
 */
export interface LatencyModel {
  stepFixedMs: number
  prefillTokenMs: number
  runningSeqMs: number
  contextTokenMs: number
}

export const DEFAULT_LATENCY: Readonly<LatencyModel> = Object.freeze({
  stepFixedMs: 8, // ms per step: kernel launches, sampling, scheduler overhead
  prefillTokenMs: 0.03, // ms per prompt token computed in the step (≈ 33k prefill tokens/s)
  runningSeqMs: 0.1, // ms per sequence in the batch (per-sequence decode cost)
  contextTokenMs: 0.00005, // ms per KV token read by the batch's attention (64 × 1k tokens ≈ 3 ms)
})

/** Output length when the request does not set `ignore_eos`: drawn per request, capped by `max_tokens`. */
export type OutputLengthDistribution =
  | { type: 'constant'; value: number }
  | { type: 'uniform'; min: number; max: number }
  /** vLLM's multi-turn bench convention: `average` and `medianRatio` (median / mean, default 0.85). */
  | { type: 'lognormal'; average: number; medianRatio?: number; max?: number }

export const DEFAULT_OUTPUT_LENGTH: Readonly<OutputLengthDistribution> = Object.freeze({
  type: 'lognormal',
  average: 256, // tokens: a typical chat answer
  medianRatio: 0.85,
  max: 4096, // tokens
})

/** Faults a reliability test can switch on at start (`faults` option / flags) or at run time (`POST /sim/faults`). */
export interface FaultConfig {
  /** Probability that an engine step stalls for `latencySpikeMs` extra (a GPU hiccup that delays every stream). */
  latencySpikeRate: number
  latencySpikeMs: number
  /** Share of generation requests answered `500` before any token. */
  errorRate: number
  /** Share of streams whose connection is cut mid-way (after half their tokens), without `[DONE]`. */
  streamCutRate: number
  /**
   * Share of streams that fail mid-way (after half their tokens) the way vLLM reports an error once the
   * stream has started: on the HTTP 200, `data: {"error": {…}}` then `data: [DONE]`.
   */
  streamErrorRate: number
  /** The engine is dead: `GET /health` answers 503 and generation requests 500, as vLLM after an engine crash. */
  engineDead: boolean
  /** `/metrics` answers `500`. */
  metricsUnavailable: boolean
  /** `/metrics` answers after this many emulated ms (real ms at speed 1), to trip a poller's timeout. */
  metricsDelayMs: number
  /** The process exits with status 1 this many ms after start (CLI); `startSim` closes the server instead. */
  dieAfterMs: number | null
  /**
   * Lies in `/metrics`: each named sample (as exposed, e.g. `vllm:kv_cache_usage_perc`,
   * `vllm:prompt_tokens_total`) reports this value in every label set; `"NaN"`, `"+Inf"` and `"-Inf"` are
   * accepted since JSON has no such numbers. A run-time change replaces the whole map (`{}` clears it).
   */
  metricsOverrides: Readonly<Record<string, MetricOverrideValue>>
  /** Labels of `vllm:cache_config_info` reported instead of the real ones (e.g. `{num_gpu_blocks: "1e15"}`). */
  cacheConfigLabels: Readonly<Record<string, string>>
  /** `/metrics` bodies padded with comment lines to at least this many bytes (a flood); 0 = off. */
  metricsPadBytes: number
  /**
   * Share of OpenAI API requests (generation, `/v1/models`, `/tokenize`, `/detokenize`, `/version`) answered
   * `502` with an HTML page, as a reverse proxy in front of a dead vLLM answers.
   */
  badGatewayHtmlRate: number
}

export type MetricOverrideValue = number | 'NaN' | '+Inf' | '-Inf'

export const DEFAULT_FAULTS: Readonly<FaultConfig> = Object.freeze({
  latencySpikeRate: 0,
  latencySpikeMs: 0,
  errorRate: 0,
  streamCutRate: 0,
  streamErrorRate: 0,
  engineDead: false,
  metricsUnavailable: false,
  metricsDelayMs: 0,
  dieAfterMs: null,
  metricsOverrides: Object.freeze({}),
  cacheConfigLabels: Object.freeze({}),
  metricsPadBytes: 0,
  badGatewayHtmlRate: 0,
})

/** A LoRA adapter served beside its base model (vLLM's `--lora-modules name=path`). */
export interface LoraModule {
  name: string
  path: string
  /** The base model it belongs to; the first served model when absent (as vLLM). */
  baseModelName?: string
}

/** The part of vLLM's `KVTransferConfig` the emulator reads. */
export interface KvTransferConfig {
  kv_connector: 'OffloadingConnector'
  kv_role?: 'kv_both'
  kv_connector_extra_config?: { num_cpu_blocks?: number; cpu_bytes_to_use?: number; eviction_policy?: 'lru' }
}

export interface SimOptions {
  /** 0 = ephemeral (default 8000 on the CLI, 0 for `startSim`). */
  port?: number
  host?: string
  /** The model (vLLM: its path or name); served under this name unless `servedModelName` says otherwise. */
  model?: string
  /**
   * vLLM's `--served-model-name`: names (aliases) of the one model; requests may use any of them, responses
   * and metrics carry the first.
   */
  servedModelName?: string[]
  /**
   * Several distinct models on one emulated server, sharing its KV pool (a kvgate extension: vLLM serves one
   * base model per process). Each answers under its own name and has its own per-request metric series.
   */
  models?: string[]
  loraModules?: LoraModule[]
  /** vLLM's `--enable-lora`: accepted for familiar command lines; adapters are served whenever listed. */
  enableLora?: boolean
  numGpuBlocks?: number
  /** vLLM's `--num-gpu-blocks-override`: wins over `numGpuBlocks`, and `cache_config_info` reports it. */
  numGpuBlocksOverride?: number
  /** vLLM's `--gpu-memory-utilization`: reported in `cache_config_info`, no effect (the pool is `numGpuBlocks`). */
  gpuMemoryUtilization?: number
  /** The CPU offloading tier in GiB (vLLM's `--kv-offloading-size`); blocks = GiB ÷ (kvBytesPerToken × blockSize). */
  kvOffloadingSize?: number
  /** vLLM's `--kv-offloading-backend`; only `native` (vLLM's OffloadingConnector) is emulated. */
  kvOffloadingBackend?: 'native'
  /** The CPU tier in blocks (vLLM's `kv_connector_extra_config.num_cpu_blocks`); exclusive with `kvOffloadingSize`. */
  numCpuBlocks?: number
  /**
   * vLLM 0.11's way to the same tier: `--kv-transfer-config` with the OffloadingConnector and
   * `kv_connector_extra_config.num_cpu_blocks` (or `cpu_bytes_to_use`). Other connectors are not emulated.
   */
  kvTransferConfig?: KvTransferConfig
  /** Bytes of KV per token, to turn GiB into blocks and count transfer bytes (default: Llama-3.1-8B in bf16). */
  kvBytesPerToken?: number
  /** Emulated ms to load one block from the CPU tier (default: the block's bytes at 25 GB/s). */
  kvOffloadingLoadMsPerBlock?: number
  blockSize?: number
  maxNumSeqs?: number
  maxNumBatchedTokens?: number
  maxModelLen?: number
  /** Emulated time runs this many times faster than real time. */
  speed?: number
  seed?: number
  metricsCompat?: 'v1' | 'v0'
  latency?: Partial<LatencyModel>
  outputLength?: OutputLengthDistribution
  faults?: Partial<FaultConfig>
  enablePrefixCaching?: boolean
  logger?: false | pino.Logger
}

export const SIM_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  model: 'kvgate-sim',
  numGpuBlocks: 4096, // blocks: 65,536 tokens of KV at block size 16
  gpuMemoryUtilization: 0.9, // fraction (vLLM's default); reported only
  // bytes per token: Llama-3.1-8B in bf16 = 32 layers × 8 KV heads × 128 dims × 2 (K, V) × 2 bytes
  kvBytesPerToken: 131_072,
  // bytes per emulated ms: 25 GB/s, about half of what pinned host-to-device copies reach on PCIe Gen5 x16
  // (~50 GB/s), for the DMA transfers sharing the link with the model's own traffic
  kvOffloadingBytesPerMs: 25_000_000,
  blockSize: 16, // tokens per block (vLLM's default)
  maxNumSeqs: 256, // sequences per batch (vLLM's default)
  maxNumBatchedTokens: 8192, // tokens per step (vLLM's chunked-prefill default on large GPUs)
  maxModelLen: 8192, // tokens of context
  speed: 1,
  seed: 0,
  metricsCompat: 'v1' as const,
  enablePrefixCaching: true,
})

/** Options with every default applied; what the engine and server are built from. */
export interface ResolvedSimOptions {
  port: number
  host: string
  model: string
  servedModelName: string[] | null
  models: string[] | null
  loraModules: LoraModule[]
  numGpuBlocks: number
  numGpuBlocksOverride: number | null
  gpuMemoryUtilization: number
  /** The CPU tier: null when off. */
  offload: ResolvedOffload | null
  kvBytesPerToken: number
  blockSize: number
  maxNumSeqs: number
  maxNumBatchedTokens: number
  maxModelLen: number
  speed: number
  seed: number
  metricsCompat: 'v1' | 'v0'
  latency: LatencyModel
  outputLength: OutputLengthDistribution
  faults: FaultConfig
  enablePrefixCaching: boolean
}

export interface ResolvedOffload {
  numCpuBlocks: number
  /** GiB as given (`kv_offloading_size`), or null when sized otherwise. */
  sizeGiB: number | null
  /** `kv_offloading_backend` as vLLM reports it: set by the GiB route, null for a connector config or blocks. */
  backend: 'native' | null
  loadMsPerBlock: number
  bytesPerBlock: number
}

const GIB = 1024 ** 3

export function resolveSimOptions(options: SimOptions = {}): ResolvedSimOptions {
  const blockSize = options.blockSize ?? SIM_DEFAULTS.blockSize
  const kvBytesPerToken = options.kvBytesPerToken ?? SIM_DEFAULTS.kvBytesPerToken
  const bytesPerBlock = kvBytesPerToken * blockSize
  const extra = options.kvTransferConfig?.kv_connector_extra_config
  const cpuBytes =
    options.kvOffloadingSize !== undefined ? options.kvOffloadingSize * GIB : (extra?.cpu_bytes_to_use ?? 0)
  const numCpuBlocks = options.numCpuBlocks ?? extra?.num_cpu_blocks ?? Math.floor(cpuBytes / bytesPerBlock)
  return {
    port: options.port ?? 0,
    host: options.host ?? SIM_DEFAULTS.host,
    model: options.model ?? SIM_DEFAULTS.model,
    servedModelName: options.servedModelName ?? null,
    models: options.models ?? null,
    loraModules: options.loraModules ?? [],
    numGpuBlocks: options.numGpuBlocksOverride ?? options.numGpuBlocks ?? SIM_DEFAULTS.numGpuBlocks,
    numGpuBlocksOverride: options.numGpuBlocksOverride ?? null,
    gpuMemoryUtilization: options.gpuMemoryUtilization ?? SIM_DEFAULTS.gpuMemoryUtilization,
    offload:
      numCpuBlocks > 0
        ? {
            numCpuBlocks,
            sizeGiB: options.numCpuBlocks === undefined ? (options.kvOffloadingSize ?? null) : null,
            backend: options.kvOffloadingSize !== undefined ? (options.kvOffloadingBackend ?? 'native') : null,
            loadMsPerBlock: options.kvOffloadingLoadMsPerBlock ?? bytesPerBlock / SIM_DEFAULTS.kvOffloadingBytesPerMs,
            bytesPerBlock,
          }
        : null,
    kvBytesPerToken,
    blockSize,
    maxNumSeqs: options.maxNumSeqs ?? SIM_DEFAULTS.maxNumSeqs,
    maxNumBatchedTokens: options.maxNumBatchedTokens ?? SIM_DEFAULTS.maxNumBatchedTokens,
    maxModelLen: options.maxModelLen ?? SIM_DEFAULTS.maxModelLen,
    speed: options.speed ?? SIM_DEFAULTS.speed,
    seed: options.seed ?? SIM_DEFAULTS.seed,
    metricsCompat: options.metricsCompat ?? SIM_DEFAULTS.metricsCompat,
    latency: { ...DEFAULT_LATENCY, ...options.latency },
    outputLength: options.outputLength ?? { ...DEFAULT_OUTPUT_LENGTH },
    faults: { ...DEFAULT_FAULTS, ...options.faults },
    enablePrefixCaching: options.enablePrefixCaching ?? SIM_DEFAULTS.enablePrefixCaching,
  }
}
