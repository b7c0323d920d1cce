import type { Random } from '../core/index.js'

/**
 * Words of at most 8 letters: each, after a space, is exactly one token for the word-piece counter, so
 * `buildText(n)` is exactly n tokens. The emulator streams these as output and the bench builds prompts
 * from them.
 */
const WORDS = [
  'the',
  'cache',
  'token',
  'block',
  'queue',
  'admit',
  'user',
  'model',
  'stream',
  'prompt',
  'reply',
  'value',
  'server',
  'gateway',
  'policy',
  'fair',
  'share',
  'quota',
  'minute',
  'second',
  'batch',
  'prefill',
  'decode',
  'memory',
  'request',
  'answer',
  'latency',
  'deadline',
  'ledger',
  'predict',
  'length',
  'window',
  'sample',
  'metric',
  'counter',
  'weight',
  'client',
  'backend',
  'health',
  'ready',
  'hello',
  'world',
  'a',
  'of',
  'and',
  'to',
  'in',
  'is',
  'it',
  'that',
  'for',
  'on',
  'with',
  'as',
  'at',
  'by',
  'from',
  'this',
  'we',
  'you',
] as const

/** One word with its leading space: one token. */
export function randomWord(random: Random): string {
  return ` ${WORDS[Math.floor(random.next() * WORDS.length)]}`
}

/** Text of exactly `tokens` tokens (for the word-piece counter), drawn from `random`. */
export function buildText(tokens: number, random: Random): string {
  let text = ''
  for (let i = 0; i < tokens; i++) text += randomWord(random)
  return text
}
