/**
 * The KV cache as vLLM's V1 `BlockPool` keeps it: `numGpuBlocks` blocks, block 0 reserved as the null
 * block (hence usage = 1 − free / (numGpuBlocks − 1)), a free queue ordered for LRU eviction, and a map from
 * the hash of each full, computed block to the block that holds it (prefix caching).
 *
 * A freed block keeps its hash and content until it is handed out again, so a later request with the same
 * prefix can take it back out of the free queue (`touch`) instead of recomputing it. Free blocks therefore
 * include cached-but-unreferenced ones, and a resident prefix cache does not raise the usage.
 *
 * The free queue is an intrusive doubly linked list over typed arrays so a cache hit can remove a block from
 * the middle in O(1) and the pool allocates nothing per operation.
 */
export interface BlockPool {
  readonly numGpuBlocks: number
  numFreeBlocks(): number
  /** Fraction of usable blocks held by running requests, 0–1. */
  usage(): number
  /** Take `n` blocks from the head of the free queue (evicting their cached hashes); `null` if fewer are free. */
  allocate(n: number): number[] | null
  /** Blocks whose chained hashes match, in order, stopping at the first miss. */
  findCached(hashes: readonly number[], maxBlocks: number): number[]
  /** How many of `blocks` sit unreferenced in the free queue (a hit on them lowers the free count). */
  countFree(blocks: readonly number[]): number
  /** Add a reference to cached blocks (a prefix-cache hit): removes them from the free queue if unreferenced. */
  touch(blocks: readonly number[]): void
  /** Drop one reference from each block; blocks reaching 0 go to the free queue's tail in the order given. */
  free(blocks: readonly number[]): void
  /** Record that `block` now holds the full, computed block with this chained hash. */
  cacheBlock(block: number, hash: number): void
  /** Blocks registered in the prefix cache, held by a request or resident in the free queue. */
  numCachedBlocks(): number
}

const NONE = -1
const NULL_BLOCK = 0

export function createBlockPool(numGpuBlocks: number, enablePrefixCaching: boolean): BlockPool {
  if (!Number.isInteger(numGpuBlocks) || numGpuBlocks < 2) {
    throw new RangeError(`numGpuBlocks must be an integer ≥ 2, got ${numGpuBlocks}`)
  }
  const refCount = new Int32Array(numGpuBlocks)
  const prev = new Int32Array(numGpuBlocks).fill(NONE)
  const next = new Int32Array(numGpuBlocks).fill(NONE)
  const inFreeQueue = new Uint8Array(numGpuBlocks)
  // A block's hash, or NaN when it holds nothing reusable.
  const blockHash = new Float64Array(numGpuBlocks).fill(Number.NaN)
  const cached = new Map<number, number>()
  let head = NONE
  let tail = NONE
  let freeCount = 0

  const pushTail = (block: number): void => {
    prev[block] = tail
    next[block] = NONE
    if (tail === NONE) head = block
    else next[tail] = block
    tail = block
    inFreeQueue[block] = 1
    freeCount++
  }
  const unlink = (block: number): void => {
    const p = prev[block]!
    const n = next[block]!
    if (p === NONE) head = n
    else next[p] = n
    if (n === NONE) tail = p
    else prev[n] = p
    prev[block] = NONE
    next[block] = NONE
    inFreeQueue[block] = 0
    freeCount--
  }
  const evictHash = (block: number): void => {
    const hash = blockHash[block]!
    if (!Number.isNaN(hash)) {
      if (cached.get(hash) === block) cached.delete(hash)
      blockHash[block] = Number.NaN
    }
  }

  // The null block (0) is never handed out, as in vLLM.
  for (let block = 1; block < numGpuBlocks; block++) pushTail(block)

  return {
    numGpuBlocks,
    numFreeBlocks: () => freeCount,
    usage: () => 1 - freeCount / (numGpuBlocks - 1),
    allocate(n) {
      if (n > freeCount) return null
      const blocks = new Array<number>(n)
      for (let i = 0; i < n; i++) {
        const block = head
        unlink(block)
        evictHash(block)
        refCount[block] = 1
        blocks[i] = block
      }
      return blocks
    },
    findCached(hashes, maxBlocks) {
      const hits: number[] = []
      if (!enablePrefixCaching) return hits
      const limit = Math.min(hashes.length, maxBlocks)
      for (let i = 0; i < limit; i++) {
        const block = cached.get(hashes[i]!)
        if (block === undefined) break
        hits.push(block)
      }
      return hits
    },
    countFree(blocks) {
      let n = 0
      for (const block of blocks) n += inFreeQueue[block]!
      return n
    },
    touch(blocks) {
      for (const block of blocks) {
        if (inFreeQueue[block] === 1) unlink(block)
        refCount[block]!++
      }
    },
    free(blocks) {
      for (const block of blocks) {
        if (block === NULL_BLOCK) continue
        const left = --refCount[block]!
        if (left === 0) pushTail(block)
      }
    },
    cacheBlock(block, hash) {
      if (!enablePrefixCaching || !Number.isNaN(blockHash[block]!)) return
      // Two requests may compute the same block; the first stays the canonical copy, as a hit needs only one.
      if (cached.has(hash)) return
      blockHash[block] = hash
      cached.set(hash, block)
    },
    numCachedBlocks: () => cached.size,
  }
}

// FNV-1a over 32-bit words, two lanes with different offsets, folded into 53 bits so the hash is an exact
// JS number usable as a Map key. A collision needs ~2^26 live blocks to become likely; an emulator never
// holds that many.
const FNV_PRIME = 0x01000193

/** Hash of one full block of token ids, chained on its parent block's hash (0 for the first block). */
export function hashBlock(parent: number, tokenIds: readonly number[], start: number, end: number): number {
  let lo = (0x811c9dc5 ^ (parent >>> 0)) >>> 0
  let hi = (0x050c5d1f ^ Math.floor(parent / 4294967296)) >>> 0
  for (let i = start; i < end; i++) {
    const id = tokenIds[i]!
    lo = Math.imul(lo ^ (id & 0xffff), FNV_PRIME)
    lo = Math.imul(lo ^ (id >>> 16), FNV_PRIME)
    hi = Math.imul(hi ^ ((id * 31) & 0xffff), FNV_PRIME)
    hi = Math.imul(hi ^ (id >>> 11), FNV_PRIME)
  }
  return (hi & 0x1fffff) * 4294967296 + (lo >>> 0)
}
