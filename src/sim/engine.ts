import { randomWord, type TokenCounter } from '../tokens/index.js'
import type { Clock, Random, TimerHandle } from '../core/index.js'
import { createBlockPool, hashBlock, type BlockPool } from './block-pool.js'
import type { FinishedReason, SimMetrics } from './metrics.js'
import type { FaultConfig, LatencyModel } from './options.js'

/**
 * The emulated vLLM V1 engine core: a FCFS waiting queue, a running batch, and one step loop.
 *
 * Each step the scheduler (as vLLM's `Scheduler.schedule`) first gives every running request its next
 * tokens — one for a decode, a chunk of the prompt for a prefill in progress — within the step's token
 * budget, preempting the most recently scheduled running request (recompute: blocks freed, back to the
 * front of the waiting queue) whenever a request cannot get a block; then, if nothing was preempted,
 * admits waiting requests in order while the batch has a free seat, budget and blocks, taking any cached
 * prefix blocks first. The step then "runs" for the latency model's time, after which every request whose
 * prompt is fully computed emits one token.
 *
 * One timer per step, whatever the number of requests; per-step work is O(scheduled requests).
 */
export interface EngineRequestSpec {
  promptTokenIds: readonly number[]
  /** Output tokens after which the request stops with `length`. */
  maxTokens: number
  /** Output tokens after which it stops with `stop` (the emulated EOS); ≥ 1, ≤ maxTokens. */
  targetTokens: number
  /** Draws this request's output words (a request's `seed`); the engine's own stream otherwise. */
  random?: Random
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
  /** Emulated ms of timer lateness the step loop catches up on (default 250). */
  maxCatchUpMs?: number
  /** Runs `fn` after the current turn of the event loop (default: a 0 ms timer on `clock`). */
  defer?: (fn: () => void) => unknown
}

const DEFAULT_MAX_CATCH_UP_MS = 250 // emulated ms
// Request-steps (≈ tokens streamed) run back to back before yielding to I/O: enough to catch up many
// small steps at a high speed, few enough that /metrics and new connections are served within a few ms.
const MAX_TOKENS_PER_CALLBACK = 4096

export interface Engine {
  add(spec: EngineRequestSpec, sink: EngineSink): EngineRequest
  state(): EngineState
  usage(): number
  /** The running batch as the scheduler sees it, for invariant checks in tests and debugging. */
  inspect(): Array<{ id: number; blocks: number; computedTokens: number; tokens: number }>
  readonly pool: BlockPool
  /** Stops the step loop; pending requests are left as they are. */
  close(): void
}

enum Status {
  Waiting,
  Running,
  Finished,
}

interface Request extends EngineRequest {
  sink: EngineSink
  random: Random
  status: Status
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

export function createEngine(options: EngineOptions): Engine {
  const { clock, random, tokenCounter, metrics, blockSize, maxNumSeqs, maxNumBatchedTokens, latency } = options
  const pool = createBlockPool(options.numGpuBlocks, options.enablePrefixCaching)
  const waiting: Request[] = []
  let running: Request[] = []
  let inFlight: Request[] = []
  let stepTimer: TimerHandle | null = null
  let wakePending = false
  const maxCatchUpMs = options.maxCatchUpMs ?? DEFAULT_MAX_CATCH_UP_MS
  const defer = options.defer ?? ((fn: () => void) => clock.setTimeout(fn, 0))
  let closed = false
  let nextId = 1
  // Output words repeat from a small vocabulary; memoise their ids rather than re-encoding each token.
  const wordIds = new Map<string, number>()
  const wordId = (word: string): number => {
    let id = wordIds.get(word)
    if (id === undefined) {
      id = tokenCounter.encode(word)[0] ?? 0
      wordIds.set(word, id)
    }
    return id
  }

  const numTokens = (r: Request): number => r.tokenIds.length

  const hashesUpTo = (r: Request, fullBlocks: number): void => {
    const hashes = r.blockHashes
    while (hashes.length < fullBlocks) {
      const i = hashes.length
      const parent = i === 0 ? 0 : hashes[i - 1]!
      hashes.push(hashBlock(parent, r.tokenIds, i * blockSize, (i + 1) * blockSize))
    }
  }

  const freeBlocks = (r: Request): void => {
    // Reverse order: the deepest block reaches the free queue first and is evicted first, keeping the
    // shared head of a prefix cached longest (vLLM's `free_blocks(reversed(...))`).
    if (r.blocks.length > 0) pool.free(r.blocks.reverse())
    r.blocks = []
    r.numCachedBlocks = 0
  }

  const preempt = (r: Request): void => {
    freeBlocks(r)
    r.numComputed = 0
    r.numScheduled = 0
    r.status = Status.Waiting
    waiting.unshift(r)
    metrics.preemptions++
  }

  const blocksFor = (tokens: number): number => Math.ceil(tokens / blockSize)

  /** Pick this step's batch; returns the requests that compute tokens in it. */
  const schedule = (): Request[] => {
    const scheduled: Request[] = []
    let budget = maxNumBatchedTokens
    let preempted = false
    const now = clock.now()

    for (let i = 0; i < running.length && budget > 0; ) {
      const r = running[i]!
      const numNew = Math.min(numTokens(r) - r.numComputed, budget)
      if (numNew <= 0) {
        i++
        continue
      }
      const need = blocksFor(r.numComputed + numNew) - r.blocks.length
      let victimWasSelf = false
      while (need > 0 && pool.numFreeBlocks() < need) {
        const victim = running.pop()!
        preempt(victim)
        preempted = true
        // Victims come off the tail, behind `r`, so none of them was scheduled earlier in this step.
        if (victim === r) {
          victimWasSelf = true
          break
        }
      }
      if (victimWasSelf) break
      if (need > 0) r.blocks.push(...pool.allocate(need)!)
      r.numScheduled = numNew
      scheduled.push(r)
      budget -= numNew
      i++
    }

    // vLLM admits nothing new in a step that had to preempt: the pool is already too tight.
    while (!preempted && waiting.length > 0 && running.length < maxNumSeqs && budget > 0) {
      const r = waiting[0]!
      const total = numTokens(r)
      // At least one token must be computed to produce logits, so a full-prompt hit stops one block short.
      const maxHitBlocks = Math.floor((total - 1) / blockSize)
      let hits: number[] = []
      if (options.enablePrefixCaching && maxHitBlocks > 0) {
        hashesUpTo(r, maxHitBlocks)
        hits = pool.findCached(r.blockHashes, maxHitBlocks)
      }
      const hitTokens = hits.length * blockSize
      const numNew = Math.min(total - hitTokens, budget)
      const need = blocksFor(hitTokens + numNew) - hits.length
      if (need > pool.numFreeBlocks() - pool.countFree(hits)) break // FCFS: the head waits, so do the rest
      pool.touch(hits)
      r.blocks = need > 0 ? hits.concat(pool.allocate(need)!) : hits
      r.numCachedBlocks = hits.length
      r.numComputed = hitTokens
      if (options.enablePrefixCaching) {
        metrics.prefixCacheQueries += total
        metrics.prefixCacheHits += hitTokens
      }
      waiting.shift()
      r.status = Status.Running
      if (r.firstScheduledMs < 0) {
        r.firstScheduledMs = now
        metrics.queueTime.observe((now - r.arrivalMs) / 1000)
      }
      r.numScheduled = numNew
      running.push(r)
      scheduled.push(r)
      budget -= numNew
    }
    return scheduled
  }

  const stepDurationMs = (scheduled: readonly Request[]): number => {
    let prefillTokens = 0
    let contextTokens = 0
    for (const r of scheduled) {
      if (r.numScheduled > 1 || r.output === 0) prefillTokens += r.numScheduled
      contextTokens += r.numComputed + r.numScheduled
    }
    let ms =
      latency.stepFixedMs +
      latency.prefillTokenMs * prefillTokens +
      latency.runningSeqMs * scheduled.length +
      latency.contextTokenMs * contextTokens
    const faults = options.faults()
    if (faults.latencySpikeRate > 0 && random.next() < faults.latencySpikeRate) ms += faults.latencySpikeMs
    return ms
  }

  const finish = (r: Request, reason: FinishedReason): void => {
    r.status = Status.Finished
    freeBlocks(r)
    metrics.requestSuccess[reason]++
  }

  const completeStep = (): void => {
    const now = clock.now()
    let anyFinished = false
    let stepTokens = 0
    for (const r of inFlight) stepTokens += r.numScheduled
    if (stepTokens > 0) metrics.iterationTokens.observe(stepTokens)
    for (const r of inFlight) {
      if (r.status !== Status.Running || r.numScheduled === 0) continue // aborted or preempted meanwhile
      r.numComputed += r.numScheduled
      r.numScheduled = 0
      // Register the blocks this step filled so later requests can hit them.
      if (options.enablePrefixCaching) {
        const full = Math.floor(r.numComputed / blockSize)
        if (full > r.numCachedBlocks) {
          hashesUpTo(r, full)
          for (let i = r.numCachedBlocks; i < full; i++) pool.cacheBlock(r.blocks[i]!, r.blockHashes[i]!)
          r.numCachedBlocks = full
        }
      }
      if (r.numComputed < numTokens(r)) continue // chunked prefill still in progress

      const word = randomWord(r.random)
      r.tokenIds.push(wordId(word))
      r.output++
      metrics.generationTokens++
      if (r.output === 1) {
        // As vLLM: prompt tokens count once, when the prefill yields the first token (not again on recompute).
        metrics.promptTokens += r.promptTokens
        r.firstTokenMs = now
        metrics.ttft.observe((now - r.arrivalMs) / 1000)
        metrics.prefillTime.observe((now - r.firstScheduledMs) / 1000)
      } else {
        metrics.interTokenLatency.observe((now - r.lastTokenMs) / 1000)
      }
      r.lastTokenMs = now
      const stopped = r.sink.onToken(word, r.output) === true
      if (r.status !== Status.Running) continue // the sink aborted it (client gone, fault)
      if (stopped || r.output >= r.targetTokens) {
        const reason = stopped || r.output < r.maxTokens ? 'stop' : 'length'
        finish(r, reason)
        anyFinished = true
        metrics.e2eLatency.observe((now - r.arrivalMs) / 1000)
        metrics.inferenceTime.observe((now - r.firstScheduledMs) / 1000)
        metrics.requestPromptTokens.observe(r.promptTokens)
        metrics.requestGenerationTokens.observe(r.output)
        metrics.requestParamsMaxTokens.observe(r.maxTokens)
        metrics.decodeTime.observe((now - r.firstTokenMs) / 1000)
        if (r.output > 1) metrics.timePerOutputToken.observe((now - r.firstTokenMs) / 1000 / (r.output - 1))
        r.sink.onFinish(reason)
      }
    }
    if (anyFinished) running = running.filter((r) => r.status === Status.Running)
  }

  /**
   * Steps follow a planned timeline: each starts where the previous one was due to end, not where its timer
   * happened to fire. Timers fire late (≥ 1 ms of real time, which is 100 emulated ms at speed 100), so
   * without this the emulator would run slower than its latency model, more so the faster the clock. Steps
   * that are already due run back to back in one callback, up to a bound that keeps sockets served; a lag
   * beyond `maxCatchUpMs` (the process is CPU-bound) is dropped rather than repaid in a burst.
   */
  let plannedEndMs: number | null = null
  let loopRunning = false

  const onStepDue = (): void => {
    stepTimer = null
    let work = 0
    for (;;) {
      work += inFlight.length
      completeStep()
      inFlight = []
      if (closed) return
      const previousEnd = plannedEndMs!
      inFlight = schedule()
      if (inFlight.length === 0) {
        // Idle, or the waiting head does not fit until a request leaves: the next arrival or abort wakes us.
        plannedEndMs = null
        loopRunning = false
        return
      }
      const now = clock.now()
      const start = now - previousEnd > maxCatchUpMs ? now : previousEnd
      plannedEndMs = start + stepDurationMs(inFlight)
      if (plannedEndMs > now || work >= MAX_TOKENS_PER_CALLBACK) {
        stepTimer = clock.setTimeout(onStepDue, Math.max(0, plannedEndMs - now))
        return
      }
    }
  }

  const startLoop = (): void => {
    wakePending = false
    if (closed || loopRunning) return
    inFlight = schedule()
    if (inFlight.length === 0) return
    loopRunning = true
    const now = clock.now()
    plannedEndMs = now + stepDurationMs(inFlight)
    stepTimer = clock.setTimeout(onStepDue, plannedEndMs - now)
  }

  /** Start the loop if it is idle; arrivals in the same turn of the event loop join the same first step. */
  const wake = (): void => {
    if (closed || loopRunning || wakePending) return
    wakePending = true
    defer(startLoop)
  }

  return {
    pool,
    add(spec, sink) {
      const r: Request = {
        id: nextId++,
        promptTokens: spec.promptTokenIds.length,
        targetTokens: spec.targetTokens,
        maxTokens: spec.maxTokens,
        outputTokens: () => r.output,
        abort(reason = 'abort') {
          if (r.status === Status.Finished) return
          if (r.status === Status.Waiting) {
            const at = waiting.indexOf(r)
            if (at >= 0) waiting.splice(at, 1)
          } else {
            const at = running.indexOf(r)
            if (at >= 0) running.splice(at, 1)
          }
          finish(r, reason)
          // Freed blocks may let the waiting head in.
          wake()
        },
        sink,
        random: spec.random ?? random,
        status: Status.Waiting,
        tokenIds: spec.promptTokenIds.slice(),
        blocks: [],
        blockHashes: [],
        numComputed: 0,
        numCachedBlocks: 0,
        numScheduled: 0,
        output: 0,
        arrivalMs: clock.now(),
        firstScheduledMs: -1,
        firstTokenMs: -1,
        lastTokenMs: -1,
      }
      waiting.push(r)
      wake()
      return r
    },
    state() {
      const free = pool.numFreeBlocks()
      return {
        running: running.length,
        waiting: waiting.length,
        usedBlocks: pool.numGpuBlocks - 1 - free,
        freeBlocks: free,
        numGpuBlocks: pool.numGpuBlocks,
        preemptions: metrics.preemptions,
      }
    },
    usage: () => pool.usage(),
    inspect: () =>
      running.map((r) => ({
        id: r.id,
        blocks: r.blocks.length,
        computedTokens: r.numComputed,
        tokens: r.tokenIds.length,
      })),
    close() {
      closed = true
      if (stepTimer !== null) clock.clearTimeout(stepTimer)
      stepTimer = null
    },
  }
}
