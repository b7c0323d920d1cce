/**
 * The CPU offloading tier as vLLM's `LRUOffloadingManager` over a `CPUBackend` keeps it
 * (`vllm/v1/kv_offload/lru_manager.py`, `backends/cpu.py`): up to `numBlocks` blocks, each known by the
 * chained hash of the GPU block it copies, in least-recently-used order; a block being loaded back holds a
 * reference and cannot be evicted meanwhile.
 *
 * The connector (the engine here) writes through: every block a request fills is stored once computed, not
 * when the GPU evicts it, so the tier holds the most recently used blocks whether or not they are also
 * still on the GPU. A `Map` keeps insertion order, which is the LRU order (first = evicted first).
 */
export interface CpuTier {
  readonly numBlocks: number
  /** Blocks stored now; never above `numBlocks`. */
  size(): number
  /** How many of `hashes[from..to)` are stored, consecutively from `from` (a prefix hit). */
  lookup(hashes: readonly number[], from: number, to: number): number
  /**
   * Mark `hashes[0..to)` recently used. As vLLM's `touch`, in reverse, so the first block ends most recent
   * and a request's deepest block is evicted first (the same order as the GPU's free queue).
   */
  touch(hashes: readonly number[], to: number): void
  /**
   * Store `hashes[from..to)`, skipping those already there and evicting unreferenced blocks from the LRU end
   * to make room. Returns how many were newly stored, or `null` when not enough could be evicted (nothing is
   * stored then, as `prepare_store` returning None; the engine tries again after the next step).
   */
  store(hashes: readonly number[], from: number, to: number): number | null
  /** Hold `hashes[from..to)` while they load (vLLM's `prepare_load`). */
  acquire(hashes: readonly number[], from: number, to: number): void
  /** The load finished or was abandoned (`complete_load`). */
  release(hashes: readonly number[], from: number, to: number): void
}

export function createCpuTier(numBlocks: number): CpuTier {
  if (!Number.isInteger(numBlocks) || numBlocks < 1) {
    throw new RangeError(`numCpuBlocks must be an integer ≥ 1, got ${numBlocks}`)
  }
  // hash → references held by loads in progress, in LRU order.
  const blocks = new Map<number, number>()

  const moveToEnd = (hash: number): void => {
    const refs = blocks.get(hash)
    if (refs === undefined) return
    blocks.delete(hash)
    blocks.set(hash, refs)
  }

  return {
    numBlocks,
    size: () => blocks.size,
    lookup(hashes, from, to) {
      let hits = 0
      for (let i = from; i < to && blocks.has(hashes[i]!); i++) hits++
      return hits
    },
    touch(hashes, to) {
      for (let i = to - 1; i >= 0; i--) moveToEnd(hashes[i]!)
    },
    store(hashes, from, to) {
      const fresh = new Set<number>()
      for (let i = from; i < to; i++) if (!blocks.has(hashes[i]!)) fresh.add(hashes[i]!)
      let toEvict = fresh.size - (numBlocks - blocks.size)
      if (toEvict > 0) {
        const victims: number[] = []
        for (const [hash, refs] of blocks) {
          if (refs > 0) continue
          victims.push(hash)
          if (--toEvict === 0) break
        }
        if (toEvict > 0) return null
        for (const hash of victims) blocks.delete(hash)
      }
      for (const hash of fresh) blocks.set(hash, 0)
      return fresh.size
    },
    acquire(hashes, from, to) {
      for (let i = from; i < to; i++) {
        const hash = hashes[i]!
        const refs = blocks.get(hash)
        if (refs !== undefined) blocks.set(hash, refs + 1)
      }
    },
    release(hashes, from, to) {
      for (let i = from; i < to; i++) {
        const hash = hashes[i]!
        const refs = blocks.get(hash)
        if (refs !== undefined && refs > 0) blocks.set(hash, refs - 1)
      }
    },
  }
}
