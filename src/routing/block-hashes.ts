import type { RoutingHints } from '../admission/index.js'

/**
 * Chained hashes of a prompt's full KV blocks, as vLLM's prefix cache keys them: block i's hash covers its
 * `blockSize` token ids and block i−1's hash, so two prompts share block i's hash only if they share every
 * token up to its end. The ids are the gateway's own (src/tokens' counter on the rendered prompt), not the
 * backend's tokenizer's: the index only has to agree with itself, and the same text gives the same ids.
 * The model is hashed into the first block, so two models' prompts never share a block (vLLM's pools are
 * apart anyway, and an adapter's blocks hash apart from its base model's).
 *
 * 53 bits from two 32-bit FNV-1a lanes: an exact JS number, a usable Map key. A collision makes a prompt
 * look cached where it is not, which costs a slightly worse routing choice, never a wrong answer.
 */
const FNV_OFFSET_LO = 0x811c9dc5
const FNV_OFFSET_HI = 0x6b43a9b5
const FNV_PRIME = 0x01000193
const TWO_32 = 4294967296

/** A 53-bit seed from a model name, so each model's chains start apart. */
export function modelSeed(model: string): number {
  let lo = FNV_OFFSET_LO
  let hi = FNV_OFFSET_HI
  for (let i = 0; i < model.length; i++) {
    const c = model.charCodeAt(i)
    lo = Math.imul(lo ^ c, FNV_PRIME)
    hi = Math.imul(hi ^ ((c * 131) & 0xffff), FNV_PRIME)
  }
  return (hi & 0x1fffff) * TWO_32 + (lo >>> 0)
}

/** Hashes of every full block of `ids`, chained from `seed`. */
export function chainedBlockHashes(ids: readonly number[], blockSize: number, seed: number): number[] {
  const blocks = Math.floor(ids.length / blockSize)
  const hashes = new Array<number>(blocks)
  let parent = seed
  for (let b = 0; b < blocks; b++) {
    let lo = (FNV_OFFSET_LO ^ (parent >>> 0)) >>> 0
    let hi = (FNV_OFFSET_HI ^ Math.floor(parent / TWO_32)) >>> 0
    const end = (b + 1) * blockSize
    for (let i = b * blockSize; i < end; i++) {
      const id = ids[i] as number
      lo = Math.imul(lo ^ (id & 0xffff), FNV_PRIME)
      lo = Math.imul(lo ^ (id >>> 16), FNV_PRIME)
      hi = Math.imul(hi ^ ((id * 31) & 0xffff), FNV_PRIME)
      hi = Math.imul(hi ^ (id >>> 11), FNV_PRIME)
    }
    parent = (hi & 0x1fffff) * TWO_32 + (lo >>> 0)
    hashes[b] = parent
  }
  return hashes
}

export interface RoutingHintsInput {
  readonly model: string
  /** The prompt's token ids, asked for only when a router hashes (most-room and round-robin never do). */
  readonly tokenIds: () => readonly number[]
  readonly sessionId?: string | undefined
  readonly arrivedAtMs: number
}

/** A request's routing keys; the hashes are computed on first use, once per block size. */
export function createRoutingHints(input: RoutingHintsInput): RoutingHints {
  const byBlockSize = new Map<number, readonly number[]>()
  let ids: readonly number[] | undefined
  return {
    arrivedAtMs: input.arrivedAtMs,
    ...(input.sessionId === undefined ? {} : { sessionId: input.sessionId }),
    blockHashes(blockSize) {
      let hashes = byBlockSize.get(blockSize)
      if (hashes === undefined) {
        ids ??= input.tokenIds()
        hashes = chainedBlockHashes(ids, blockSize, modelSeed(input.model))
        byBlockSize.set(blockSize, hashes)
      }
      return hashes
    },
  }
}
