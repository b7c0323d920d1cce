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
}

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
})

export interface SimOptions {
  /** 0 = ephemeral (default 8000 on the CLI, 0 for `startSim`). */
  port?: number
  host?: string
  model?: string
  numGpuBlocks?: number
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
  numGpuBlocks: number
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

export function resolveSimOptions(options: SimOptions = {}): ResolvedSimOptions {
  return {
    port: options.port ?? 0,
    host: options.host ?? SIM_DEFAULTS.host,
    model: options.model ?? SIM_DEFAULTS.model,
    numGpuBlocks: options.numGpuBlocks ?? SIM_DEFAULTS.numGpuBlocks,
    blockSize: options.blockSize ?? SIM_DEFAULTS.blockSize,
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
