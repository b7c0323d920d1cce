import type { KvAccessTrace } from './kv-access-trace.js'

/**
 * Eviction policies of a host-memory KV tier, replayed over a `KvAccessTrace`. The tier is modelled at token
 * granularity (think of 1-token blocks): each step reads its history (what the tier holds of the
 * conversation is a hit; the rest is recomputed), then the whole conversation's KV, now in GPU memory, is
 * offered to the tier, and the policy evicts tokens until the tier fits its capacity again. All tokens of a
 * conversation are read together at every round, so a policy only has to choose *which conversation* loses
 * tokens, and losing part of one is allowed (a block tier drops blocks, not whole conversations).
 *
 * That model is what makes Belady's rule exact: with unit-size items and the freedom not to keep what was
 * just offered, evicting what is needed furthest in the future maximises the hits (Belady 1966; Mattson et
 * al. 1970). With whole variable-size conversations it would only be a heuristic, and FIFO or LRU could beat
 * it. Hit rates are therefore in tokens (= bytes) of history, and Belady's is an upper bound for every
 * policy, which the property tests check.
 */
export interface KvTierPolicy {
  readonly name: string
  /** Serve step `i` (steps in order, each once): the history tokens found in the tier. */
  access(step: number): number
  /** Tokens held now; at most the capacity after every access. */
  readonly heldTokens: number
  /** Tokens of conversation `c` held now. */
  heldOf(c: number): number
}

export interface KvTierOptions {
  capacityTokens: number
  /**
   * Queue-aware only: the last step each step can see waiting (arrived, not yet served), non-decreasing.
   * Without it the queue is empty and queue-aware is LRU.
   */
  lookaheadEnd?: Int32Array
}

export interface KvTierPolicyFactory {
  readonly name: string
  readonly description: string
  create(trace: KvAccessTrace, options: KvTierOptions): KvTierPolicy
}
