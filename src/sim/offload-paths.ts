import type { Clock } from '../core/index.js'
import type { BlockPool } from './block-pool.js'
import type { CpuTier } from './cpu-tier.js'
import { type EngineOffload, type Request, Status } from './engine-types.js'
import type { SimMetrics, TransferType } from './metrics.js'

/**
 * The engine's traffic with the CPU tier, as vLLM's OffloadingConnector scheduler side
 * (`offloading_connector.py`) drives it:
 *
 * - store: after each step, the full blocks a request computed since its last store are copied out
 *   (write-through, `_maybe_store_request`), and all its blocks are touched; a block once stored is not stored
 *   again for that request, even after a preemption.
 * - load: a waiting request whose prefix continues in the tier gets GPU blocks for it and waits, holding them,
 *   while they load (`WAITING_FOR_REMOTE_KVS`); then it goes back to the head of the waiting queue with those
 *   tokens computed and the blocks registered in the GPU prefix cache.
 *
 * Stores are asynchronous in vLLM and cost the GPU nothing here; loads cost `loadMsPerBlock` per block and
 * queue behind each other on one host-to-device channel, as on one PCIe link. Both directions are counted as
 * the connector's `vllm:kv_offload_*` metrics, one transfer per request and step.
 */
export interface OffloadPaths {
  /** Requests whose prefix is loading now. */
  readonly loading: readonly Request[]
  store(r: Request, fullBlocks: number): void
  /** Load `r`'s blocks `[from, to)`, already allocated on the GPU. */
  startLoad(r: Request, from: number, to: number): void
  /** `r` is aborted while loading: the load is abandoned. */
  cancelLoad(r: Request): void
  /** Whether any of `hashes[from..to)` is being loaded for another request. */
  isLoading(hashes: readonly number[], from: number, to: number): boolean
  close(): void
}

export interface OffloadPathsDeps {
  clock: Clock
  pool: BlockPool
  tier: CpuTier
  offload: EngineOffload
  /** The engine's metrics (its transfer counters). */
  metrics: SimMetrics
  blockSize: number
  /** The engine's waiting queue: loaded requests go back to its head. */
  waiting: Request[]
  /** Wakes the step loop once a load is done. */
  wake: () => void
}

export function createOffloadPaths(deps: OffloadPathsDeps): OffloadPaths {
  const { clock, pool, tier, offload, blockSize, waiting } = deps
  const loading: Request[] = []
  // Hashes being loaded → how many loads carry them.
  const inTransit = new Map<number, number>()
  // When the host-to-device channel is next free.
  let channelFreeMs = 0

  const record = (type: TransferType, blocks: number): void => {
    const stats = deps.metrics.transfers[type]
    const bytes = blocks * offload.bytesPerBlock
    stats.bytes += bytes
    stats.seconds += (blocks * offload.loadMsPerBlock) / 1000
    stats.size.observe(bytes)
  }

  const leave = (r: Request): void => {
    loading.splice(loading.indexOf(r), 1)
    tier.release(r.blockHashes, r.loadFrom, r.loadTo)
    for (let i = r.loadFrom; i < r.loadTo; i++) {
      const hash = r.blockHashes[i]!
      const n = inTransit.get(hash)! - 1
      if (n === 0) inTransit.delete(hash)
      else inTransit.set(hash, n)
    }
  }

  const onLoaded = (r: Request): void => {
    r.loadTimer = null
    leave(r)
    // Loaded blocks hold computed KV now: registered in the GPU prefix cache like computed ones.
    for (let i = r.loadFrom; i < r.loadTo; i++) pool.cacheBlock(r.blocks[i]!, r.blockHashes[i]!)
    r.numCachedBlocks = r.loadTo
    r.numStoredBlocks = Math.max(r.numStoredBlocks, r.loadTo)
    // A whole-prompt hit still computes its last token, to produce logits (vLLM's `num_computed_tokens -= 1`).
    r.numComputed = Math.min(r.loadTo * blockSize, r.tokenIds.length - 1)
    record('CPU_to_GPU', r.loadTo - r.loadFrom)
    r.status = Status.Waiting
    // Back to the head of the queue, among other loaded requests in arrival order (vLLM prepends the
    // requests it skipped while they loaded).
    let at = 0
    while (at < waiting.length && waiting[at]!.blocks.length > 0 && waiting[at]!.id < r.id) at++
    waiting.splice(at, 0, r)
    deps.wake()
  }

  return {
    loading,
    store(r, fullBlocks) {
      const stored = tier.store(r.blockHashes, r.numStoredBlocks, fullBlocks)
      if (stored === null) return // the tier is held by loads: try again after the next step
      r.numStoredBlocks = fullBlocks
      tier.touch(r.blockHashes, fullBlocks)
      if (stored > 0) record('GPU_to_CPU', stored)
    },
    startLoad(r, from, to) {
      tier.acquire(r.blockHashes, from, to)
      for (let i = from; i < to; i++) inTransit.set(r.blockHashes[i]!, (inTransit.get(r.blockHashes[i]!) ?? 0) + 1)
      const now = clock.now()
      const end = Math.max(now, channelFreeMs) + (to - from) * offload.loadMsPerBlock
      channelFreeMs = end
      r.status = Status.Loading
      r.loadFrom = from
      r.loadTo = to
      r.loadTimer = clock.setTimeout(() => onLoaded(r), end - now)
      loading.push(r)
    },
    isLoading(hashes, from, to) {
      if (inTransit.size === 0) return false
      for (let i = from; i < to; i++) if (inTransit.has(hashes[i]!)) return true
      return false
    },
    cancelLoad(r) {
      if (r.loadTimer !== null) clock.clearTimeout(r.loadTimer)
      r.loadTimer = null
      leave(r)
    },
    close() {
      for (const r of loading) if (r.loadTimer !== null) clock.clearTimeout(r.loadTimer)
    },
  }
}
