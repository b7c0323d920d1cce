import { createSeededRandom } from '../core/index.js'
import type { ChatMessage } from '../tokens/index.js'
import { buildText } from '../tokens/index.js'
import { MOONCAKE_BLOCK_TOKENS } from './workload.js'

/**
 * Prompts of exact token length, the same for every run with one seed so that `compare` sends the same
 * workload to every setup. The word-piece counter counts a chat prompt as 1 token per role marker, its
 * content, and 1 for the generation prompt, so a one-message prompt of N tokens has N − 2 content tokens.
 *
 * A conversation's round k sends [user₀, assistant₀, …, userₖ]: the assistant marker of each earlier answer
 * takes the place of that round's generation prompt, so round k is Σⱼ<ₖ (qⱼ + rⱼ) + qₖ tokens when each user
 * turn has q − 2 content tokens and each answer r. The first round is thus exactly the trace's q₀.
 */
export const CHAT_OVERHEAD_TOKENS = 2

/** FNV-1a over the parts, a 32-bit seed: stable per request whatever order requests are sent in. */
export function seedFor(...parts: readonly (string | number)[]): number {
  let hash = 0x811c9dc5
  for (const ch of parts.join('\u0000')) {
    hash ^= ch.codePointAt(0) ?? 0
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/** Text of exactly `tokens` tokens, determined by the seed parts. */
export function syntheticText(tokens: number, ...seedParts: readonly (string | number)[]): string {
  return buildText(Math.max(0, tokens), createSeededRandom(seedFor(...seedParts)))
}

/** Content tokens of a user turn whose share of the prompt is `turnTokens`. */
export function userContentTokens(turnTokens: number): number {
  return Math.max(0, turnTokens - CHAT_OVERHEAD_TOKENS)
}

/**
 * Mooncake: prompt text built block by block, block `h` being `buildText(512, seeded(h))`, so prompts with
 * equal leading hash ids share those blocks' text. The last block is cut short (a prefix of the same block
 * text) to reach `contentTokens` exactly.
 */
export function hashBlockText(contentTokens: number, hashIds: readonly number[]): string {
  let text = ''
  let remaining = contentTokens
  for (const id of hashIds) {
    if (remaining <= 0) break
    const take = Math.min(MOONCAKE_BLOCK_TOKENS, remaining)
    text += buildText(take, createSeededRandom(id))
    remaining -= take
  }
  // Fewer ids than tokens (a row whose hash ids fall short): pad with text unique to this prompt.
  if (remaining > 0) text += syntheticText(remaining, 'mooncake-pad', hashIds.join(','), contentTokens)
  return text
}

export function userMessage(content: string): ChatMessage {
  return { role: 'user', content }
}

export function assistantMessage(content: string): ChatMessage {
  return { role: 'assistant', content }
}
