/**
 * An approximate map of what each backend's prefix cache holds, from what the gateway sent it: per backend,
 * the chained block hashes (block-hashes.ts) of the prompts it was given, and which of them requests running
 * there hold right now.
 *
 * Aged as vLLM ages its cache. vLLM keeps a finished request's blocks in an LRU free list and evicts from its
 * head only when a new allocation needs the block, so a backend holds about its `num_gpu_blocks` most recently
 * used blocks. The index keeps, per backend, an LRU of at most that many hashes (`capacity / block_size`, read
 * from the backend's `cache_config_info`, capped by `maxBlocksPerBackend`): once the gateway has sent a
 * backend more distinct blocks than it holds, the oldest are taken for evicted. An entry older than `ttlMs`
 * counts as gone too, for what the gateway cannot see (traffic that bypasses it, a restart between polls).
 * Each touch goes in reverse block order, as vLLM frees a request's blocks (deepest first), so a chain's
 * first block is the last of it to go: the cached part of a prompt is always a prefix, and a lookup is a
 * binary search over the prompt's chain, O(log blocks).
 *
 * Held blocks are counted apart: vLLM allocates only what no running request holds (a block cached but free
 * still has to come out of the free list, so it counts as new: `get_num_blocks_to_allocate` in
 * vllm/v1/core/single_type_kv_cache_manager.py). Those are what a confident need may leave out.
 */
export interface PrefixIndexOptions {
  /** Hashes kept per backend at most, whatever its capacity. */
  readonly maxBlocksPerBackend: number
  /** An entry not touched for this long counts as evicted. */
  readonly ttlMs: number
}

interface BackendCache {
  /** hash → last touch (ms), in LRU order: the first key is the least recently used. */
  readonly recent: Map<number, number>
  /** hash → running requests holding the block. */
  readonly held: Map<number, number>
  limit: number
}

export class PrefixIndex {
  readonly #options: PrefixIndexOptions
  readonly #backends = new Map<string, BackendCache>()

  constructor(options: PrefixIndexOptions) {
    this.#options = options
  }

  #cache(backendId: string): BackendCache {
    let cache = this.#backends.get(backendId)
    if (cache === undefined) {
      cache = { recent: new Map(), held: new Map(), limit: this.#options.maxBlocksPerBackend }
      this.#backends.set(backendId, cache)
    }
    return cache
  }

  /** Leading blocks of `hashes` the backend is thought to cache (resident or held). */
  cachedBlocks(backendId: string, hashes: readonly number[], nowMs: number): number {
    const cache = this.#backends.get(backendId)
    if (cache === undefined || hashes.length === 0) return 0
    const ttl = this.#options.ttlMs
    return leadingRun(hashes, (h) => {
      const at = cache.recent.get(h)
      return (at !== undefined && nowMs - at <= ttl) || cache.held.has(h)
    })
  }

  /** Leading blocks of `hashes` that requests running on the backend hold now. */
  heldBlocks(backendId: string, hashes: readonly number[]): number {
    const cache = this.#backends.get(backendId)
    if (cache === undefined || cache.held.size === 0 || hashes.length === 0) return 0
    return leadingRun(hashes, (h) => cache.held.has(h))
  }

  /**
   * The backend was sent (or has just freed) these blocks: most recently used now. `capacityBlocks` is the
   * backend's cache size, the bound of its LRU.
   */
  touch(backendId: string, hashes: readonly number[], capacityBlocks: number, nowMs: number): void {
    const cache = this.#cache(backendId)
    cache.limit = Math.max(1, Math.min(this.#options.maxBlocksPerBackend, Math.floor(capacityBlocks)))
    const { recent } = cache
    for (let i = hashes.length - 1; i >= 0; i--) {
      const h = hashes[i] as number
      recent.delete(h)
      recent.set(h, nowMs)
    }
    this.#trim(cache, nowMs)
  }

  /** A request running on the backend holds these blocks (until `release`). */
  hold(backendId: string, hashes: readonly number[]): void {
    const { held } = this.#cache(backendId)
    for (const h of hashes) held.set(h, (held.get(h) ?? 0) + 1)
  }

  release(backendId: string, hashes: readonly number[]): void {
    const cache = this.#backends.get(backendId)
    if (cache === undefined) return
    for (const h of hashes) {
      const n = cache.held.get(h)
      if (n === undefined) continue
      if (n <= 1) cache.held.delete(h)
      else cache.held.set(h, n - 1)
    }
  }

  /** Forget what the backend was thought to cache (its holders keep their counts: they still run there). */
  reset(backendId: string): void {
    this.#backends.get(backendId)?.recent.clear()
  }

  /** Hashes remembered per backend. */
  sizes(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [id, cache] of this.#backends) out[id] = cache.recent.size
    return out
  }

  #trim(cache: BackendCache, nowMs: number): void {
    const { recent } = cache
    const ttl = this.#options.ttlMs
    for (const [h, at] of recent) {
      if (recent.size <= cache.limit && nowMs - at <= ttl) break
      recent.delete(h)
    }
  }
}

/** Length of the run of leading entries for which `has` holds, given that it holds on a prefix only. */
function leadingRun(hashes: readonly number[], has: (hash: number) => boolean): number {
  if (!has(hashes[0] as number)) return 0
  let lo = 1 // has(hashes[lo − 1]) is known true
  let hi = hashes.length // the run is at most this long
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (has(hashes[mid - 1] as number)) lo = mid
    else hi = mid - 1
  }
  return lo
}
