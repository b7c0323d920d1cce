import { randomWord } from '../tokens/index.js'
import { createBlockPool, hashBlock } from './block-pool.js'
import { createCpuTier } from './cpu-tier.js'
import { type Engine, type EngineOptions, type Request, Status } from './engine-types.js'
import type { FinishedReason, SimMetrics } from './metrics.js'
import { createOffloadPaths } from './offload-paths.js'
import { createStepLoop } from './step-loop.js'

export type {
  Engine,
  EngineOffload,
  EngineOptions,
  EngineRequest,
  EngineRequestSpec,
  EngineSink,
  EngineState,
} from './engine-types.js'

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
 * With a CPU tier (vLLM's OffloadingConnector), every block a request fills is also stored there, and a
 * waiting request whose prefix continues in the tier beyond its GPU hit gets GPU blocks for it and waits
 * while they load (vLLM's WAITING_FOR_REMOTE_KVS: it holds the blocks, not a seat, and does not hold up the
 * queue behind it); loads share one host-to-device channel at `loadMsPerBlock` each, and the step loop runs
 * on meanwhile. Once loaded, it goes back to the head of the queue with those tokens computed.
 *
 * Per-step work is O(scheduled requests).
 */
const DEFAULT_MAX_CATCH_UP_MS = 250 // emulated ms

export function createEngine(options: EngineOptions): Engine {
  const { clock, random, tokenCounter, metrics, blockSize, maxNumSeqs, maxNumBatchedTokens, latency } = options
  const pool = createBlockPool(options.numGpuBlocks, options.enablePrefixCaching)
  const offload = options.offload ?? null
  const cpuTier = offload === null ? null : createCpuTier(offload.numCpuBlocks)
  // Blocks are hashed for the GPU prefix cache, the CPU tier, or both (vLLM hashes when either needs it).
  const hashing = options.enablePrefixCaching || cpuTier !== null
  const waiting: Request[] = []
  let running: Request[] = []
  const paths =
    offload === null
      ? null
      : createOffloadPaths({
          clock,
          pool,
          tier: cpuTier!,
          offload,
          metrics,
          blockSize,
          waiting,
          wake: () => loop.wake(),
        })
  const loading = paths?.loading ?? []
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
      const parent = i === 0 ? r.salt : hashes[i - 1]!
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
    r.preemptions++
    waiting.unshift(r)
    metrics.preemptions++
  }

  const blocksFor = (tokens: number): number => Math.ceil(tokens / blockSize)

  const recordPrefixStats = (r: Request, localHits: number, externalHits: number): void => {
    // vLLM counts requests that were never preempted (`PrefixCacheStats.record(..., preempted)`).
    if (r.preemptions > 0) return
    const total = numTokens(r)
    if (options.enablePrefixCaching) {
      metrics.prefixCacheQueries += total
      metrics.prefixCacheHits += localHits * blockSize
    }
    if (cpuTier !== null) {
      metrics.externalPrefixCacheQueries += total
      metrics.externalPrefixCacheHits += externalHits * blockSize
    }
  }

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
    for (let w = 0; !preempted && w < waiting.length && running.length < maxNumSeqs && budget > 0; ) {
      const r = waiting[w]!
      const total = numTokens(r)
      if (r.blocks.length === 0) {
        // At least one token must be computed to produce logits, so a full-prompt hit stops one block short.
        const maxHitBlocks = Math.floor((total - 1) / blockSize)
        let hits: number[] = []
        if (options.enablePrefixCaching && maxHitBlocks > 0) {
          hashesUpTo(r, maxHitBlocks)
          hits = pool.findCached(r.blockHashes, maxHitBlocks)
        }
        let external = 0
        if (cpuTier !== null) {
          const fullBlocks = Math.floor(total / blockSize)
          hashesUpTo(r, fullBlocks)
          cpuTier.touch(r.blockHashes, fullBlocks)
          external = cpuTier.lookup(r.blockHashes, hits.length, fullBlocks)
        }
        if (external > 0) {
          // Another request is loading these blocks: this one waits its turn, the queue moves on (vLLM
          // delays it rather than loading the same blocks twice).
          if (paths!.isLoading(r.blockHashes, hits.length, hits.length + external)) {
            w++
            continue
          }
          // Blocks for what loads, no new work yet: the request waits for them, off the queue's head.
          if (external > pool.numFreeBlocks() - pool.countFree(hits)) break // FCFS: the head waits
          pool.touch(hits)
          r.blocks = hits.concat(pool.allocate(external)!)
          r.numCachedBlocks = hits.length
          recordPrefixStats(r, hits.length, external)
          waiting.splice(w, 1)
          paths!.startLoad(r, hits.length, hits.length + external)
          continue
        }
        const hitTokens = hits.length * blockSize
        const numNew = Math.min(total - hitTokens, budget)
        const need = blocksFor(hitTokens + numNew) - hits.length
        if (need > pool.numFreeBlocks() - pool.countFree(hits)) break // FCFS: the head waits, so do the rest
        pool.touch(hits)
        r.blocks = need > 0 ? hits.concat(pool.allocate(need)!) : hits
        r.numCachedBlocks = hits.length
        r.numComputed = hitTokens
        recordPrefixStats(r, hits.length, 0)
      } else {
        // Its prefix was loaded from the CPU tier: only the rest needs blocks.
        const need = blocksFor(r.numComputed + Math.min(total - r.numComputed, budget)) - r.blocks.length
        if (need > pool.numFreeBlocks()) break
        if (need > 0) r.blocks.push(...pool.allocate(need)!)
      }
      const numNew = Math.min(total - r.numComputed, budget)
      waiting.splice(w, 1)
      r.status = Status.Running
      if (r.firstScheduledMs < 0) {
        r.firstScheduledMs = now
        r.metrics.queueTime.observe((now - r.arrivalMs) / 1000)
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
    r.metrics.requestSuccess[reason]++
  }

  const observeFinished = (r: Request, now: number): void => {
    const m = r.metrics
    m.e2eLatency.observe((now - r.arrivalMs) / 1000)
    m.inferenceTime.observe((now - r.firstScheduledMs) / 1000)
    m.requestPromptTokens.observe(r.promptTokens)
    m.requestGenerationTokens.observe(r.output)
    m.requestParamsMaxTokens.observe(r.maxTokens)
    m.decodeTime.observe((now - r.firstTokenMs) / 1000)
    if (r.output > 1) m.timePerOutputToken.observe((now - r.firstTokenMs) / 1000 / (r.output - 1))
  }

  const completeStep = (inFlight: readonly Request[]): void => {
    const now = clock.now()
    let anyFinished = false
    let stepTokens = 0
    for (const r of inFlight) stepTokens += r.numScheduled
    if (stepTokens > 0) metrics.iterationTokens.observe(stepTokens)
    for (const r of inFlight) {
      if (r.status !== Status.Running || r.numScheduled === 0) continue // aborted or preempted meanwhile
      r.numComputed += r.numScheduled
      r.numScheduled = 0
      if (hashing) {
        // Register the blocks this step filled so later requests can hit them, and store them in the tier.
        const full = Math.floor(r.numComputed / blockSize)
        hashesUpTo(r, full)
        if (options.enablePrefixCaching && full > r.numCachedBlocks) {
          for (let i = r.numCachedBlocks; i < full; i++) pool.cacheBlock(r.blocks[i]!, r.blockHashes[i]!)
          r.numCachedBlocks = full
        }
        if (paths !== null && full > r.numStoredBlocks) paths.store(r, full)
      }
      if (r.numComputed < numTokens(r)) continue // chunked prefill still in progress

      const word = randomWord(r.random)
      r.tokenIds.push(wordId(word))
      r.output++
      r.metrics.generationTokens++
      if (r.output === 1) {
        // As vLLM: prompt tokens count once, when the prefill yields the first token (not again on recompute).
        r.metrics.promptTokens += r.promptTokens
        r.firstTokenMs = now
        r.metrics.ttft.observe((now - r.arrivalMs) / 1000)
        r.metrics.prefillTime.observe((now - r.firstScheduledMs) / 1000)
      } else {
        r.metrics.interTokenLatency.observe((now - r.lastTokenMs) / 1000)
      }
      r.lastTokenMs = now
      const stopped = r.sink.onToken(word, r.output) === true
      if (r.status !== Status.Running) continue // the sink aborted it (client gone, fault)
      if (stopped || r.output >= r.targetTokens) {
        const reason = stopped || r.output < r.maxTokens ? 'stop' : 'length'
        finish(r, reason)
        anyFinished = true
        observeFinished(r, now)
        r.sink.onFinish(reason)
      }
    }
    if (anyFinished) running = running.filter((r) => r.status === Status.Running)
  }

  const loop = createStepLoop<Request>({
    clock,
    maxCatchUpMs: options.maxCatchUpMs ?? DEFAULT_MAX_CATCH_UP_MS,
    defer: options.defer ?? ((fn: () => void) => clock.setTimeout(fn, 0)),
    schedule,
    complete: completeStep,
    duration: stepDurationMs,
  })

  const remove = (list: Request[], r: Request): void => {
    const at = list.indexOf(r)
    if (at >= 0) list.splice(at, 1)
  }

  return {
    pool,
    cpuTier,
    add(spec, sink) {
      const r: Request = {
        id: nextId++,
        promptTokens: spec.promptTokenIds.length,
        targetTokens: spec.targetTokens,
        maxTokens: spec.maxTokens,
        outputTokens: () => r.output,
        abort(reason = 'abort') {
          if (r.status === Status.Finished) return
          if (r.status === Status.Loading) paths!.cancelLoad(r)
          else remove(r.status === Status.Waiting ? waiting : running, r)
          finish(r, reason)
          // Freed blocks may let the waiting head in.
          loop.wake()
        },
        sink,
        random: spec.random ?? random,
        metrics: spec.metrics ?? metrics,
        salt: spec.cacheSalt ?? 0,
        status: Status.Waiting,
        preemptions: 0,
        loadFrom: 0,
        loadTo: 0,
        loadTimer: null,
        numStoredBlocks: 0,
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
      loop.wake()
      return r
    },
    state() {
      const free = pool.numFreeBlocks()
      return {
        running: running.length,
        // As vLLM: a request loading its prefix is still in the waiting queue.
        waiting: waiting.length + loading.length,
        usedBlocks: pool.numGpuBlocks - 1 - free,
        freeBlocks: free,
        numGpuBlocks: pool.numGpuBlocks,
        preemptions: metrics.preemptions,
        cpuBlocks: cpuTier?.size() ?? 0,
        numCpuBlocks: cpuTier?.numBlocks ?? 0,
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
    tally() {
      const counts = new Map<SimMetrics, { running: number; waiting: number }>()
      const at = (m: SimMetrics) => {
        let c = counts.get(m)
        if (c === undefined) {
          c = { running: 0, waiting: 0 }
          counts.set(m, c)
        }
        return c
      }
      for (const r of running) at(r.metrics).running++
      for (const r of waiting) at(r.metrics).waiting++
      for (const r of loading) at(r.metrics).waiting++
      return counts
    },
    close() {
      loop.close()
      paths?.close()
    },
  }
}
