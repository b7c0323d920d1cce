import type { Clock, Random, TimerHandle } from '../core/index.js'
import type { TokenCounter } from '../tokens/index.js'
import type { BlockPool } from './block-pool.js'
import type { CpuTier } from './cpu-tier.js'
import type { FinishedReason, SimMetrics } from './metrics.js'
import type { FaultConfig, LatencyModel } from './options.js'

/** The engine's contract (`engine.ts` implements it) and its internal request record. */
export interface EngineRequestSpec {
  promptTokenIds: readonly number[]
  /** Output tokens after which the request stops with `length`. */
  maxTokens: number
  /** Output tokens after which it stops with `stop` (the emulated EOS); ≥ 1, ≤ maxTokens. */
  targetTokens: number
  /** Draws this request's output words (a request's `seed`); the engine's own stream otherwise. */
  random?: Random
  /** Its model's per-request metrics; the engine's own otherwise. */
  metrics?: SimMetrics
  /** Seeds the first block's hash, so requests of different models (or adapters) never share blocks. */
  cacheSalt?: number
}

/** Callbacks from the engine to whoever streams the request. */
export interface EngineSink {
  /**
   * One output token (a word with its leading space); called once per token, in order. Returning `true`
   * ends the sequence here with `stop` (a stop string matched).
   */
  onToken(text: string, outputTokens: number): boolean | undefined
  /** The request left the engine; not called for `abort()`ed requests. */
  onFinish(reason: 'stop' | 'length'): void
}

export interface EngineRequest {
  readonly id: number
  readonly promptTokens: number
  readonly targetTokens: number
  readonly maxTokens: number
  outputTokens(): number
  /** Client went away: leave the queue or batch now and free the blocks. Idempotent. */
  abort(reason?: Extract<FinishedReason, 'abort' | 'error'>): void
}

export interface EngineState {
  running: number
  waiting: number
  usedBlocks: number
  freeBlocks: number
  numGpuBlocks: number
  preemptions: number
  /** Blocks in the CPU tier now, and its size (0 when off). */
  cpuBlocks: number
  numCpuBlocks: number
}

/** The CPU tier as the engine uses it. */
export interface EngineOffload {
  numCpuBlocks: number
  /** Emulated ms to move one block between the tiers. */
  loadMsPerBlock: number
  bytesPerBlock: number
}

export interface EngineOptions {
  clock: Clock
  /** Draws output words and latency spikes. */
  random: Random
  tokenCounter: TokenCounter
  metrics: SimMetrics
  numGpuBlocks: number
  blockSize: number
  maxNumSeqs: number
  maxNumBatchedTokens: number
  enablePrefixCaching: boolean
  latency: LatencyModel
  /** Read at every step so runtime changes apply at once. */
  faults: () => FaultConfig
  offload?: EngineOffload | null
  /** Emulated ms of timer lateness the step loop catches up on (default 250). */
  maxCatchUpMs?: number
  /** Runs `fn` after the current turn of the event loop (default: a 0 ms timer on `clock`). */
  defer?: (fn: () => void) => unknown
}

export interface Engine {
  add(spec: EngineRequestSpec, sink: EngineSink): EngineRequest
  state(): EngineState
  usage(): number
  /** The running batch as the scheduler sees it, for invariant checks in tests and debugging. */
  inspect(): Array<{ id: number; blocks: number; computedTokens: number; tokens: number }>
  /** Running and waiting requests per metrics object (per model). */
  tally(): Map<SimMetrics, { running: number; waiting: number }>
  readonly pool: BlockPool
  readonly cpuTier: CpuTier | null
  /** Stops the step loop; pending requests are left as they are. */
  close(): void
}

/** Where a request is; internal to the engine and its offload paths. */
export enum Status {
  Waiting,
  /** Its prefix is loading from the CPU tier: it holds blocks but no seat. */
  Loading,
  Running,
  Finished,
}

/** The engine's own view of a request. */
export interface Request extends EngineRequest {
  sink: EngineSink
  random: Random
  metrics: SimMetrics
  salt: number
  status: Status
  preemptions: number
  /** Blocks `[loadFrom, loadTo)` are loading from the CPU tier; the timer ends the load. */
  loadFrom: number
  loadTo: number
  loadTimer: TimerHandle | null
  /** How many of its full blocks the CPU tier has (or had: once stored, never stored again, as vLLM). */
  numStoredBlocks: number
  /** Prompt ids followed by output ids: what the KV cache holds (or will). */
  tokenIds: number[]
  blocks: number[]
  /** Chained hashes of the full blocks of `tokenIds`, computed lazily. */
  blockHashes: number[]
  numComputed: number
  /** How many of `blocks` are registered in the prefix cache. */
  numCachedBlocks: number
  numScheduled: number
  output: number
  arrivalMs: number
  firstScheduledMs: number
  firstTokenMs: number
  lastTokenMs: number
}
