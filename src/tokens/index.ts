export type { TokenCounter, ChatMessage, ChatContentPart } from './token-counter.js'
export { createWordPieceTokenCounter } from './word-piece.js'
export { buildText, randomWord } from './text-builder.js'

import type { TokenCounter } from './token-counter.js'
import { createWordPieceTokenCounter } from './word-piece.js'

/** Token counters by the name YAML and flags use. */
export const tokenCounters: Readonly<Record<string, () => TokenCounter>> = Object.freeze({
  'word-piece': createWordPieceTokenCounter,
})
