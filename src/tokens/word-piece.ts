import type { ChatContentPart, ChatMessage, TokenCounter } from './token-counter.js'

/**
 * A deterministic, invertible tokenizer that stands in for a model's BPE:
 * - a chat role marker (`<|user|>`, …), with any whitespace before it, is one token;
 * - a run of up to 8 ASCII letters or digits, with any whitespace before it, is one token
 *   (longer runs split every 8 characters);
 * - any other character, with any whitespace before it, is one token;
 * - whitespace at the very end is dropped.
 * So `" the cat sat"` is 3 tokens, and a text built from N space-prefixed short words is exactly N tokens,
 * which is what lets the bench build prompts to an exact length that the emulator and gateway count alike.
 */
const PIECE = /\s*<\|(?:system|developer|user|assistant|tool)\|>|\s*[A-Za-z0-9]{1,8}|\s*[^\sA-Za-z0-9]/gu
const SPECIALS = ['<|system|>', '<|developer|>', '<|user|>', '<|assistant|>', '<|tool|>'] as const
const ALNUM = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

// Id ranges, chosen so every piece maps to one id and back: specials, then single characters
// (2 × code point + leading-space flag), then alphanumeric runs in bijective base 63.
const SPECIAL_BASE = 1
const CHAR_BASE = 100
const ALNUM_BASE = 3_000_000

function encodePiece(piece: string): number {
  const body = piece.trimStart()
  const spaced = body.length < piece.length ? 1 : 0
  const special = SPECIALS.indexOf(body as (typeof SPECIALS)[number])
  if (special >= 0) return SPECIAL_BASE + special * 2 + spaced
  if (/^[A-Za-z0-9]+$/.test(body)) {
    let value = 0
    for (const ch of body) value = value * 63 + ALNUM.indexOf(ch) + 1
    return ALNUM_BASE + value * 2 + spaced
  }
  return CHAR_BASE + (body.codePointAt(0) ?? 0) * 2 + spaced
}

function decodeId(id: number): string {
  if (id >= SPECIAL_BASE && id < SPECIAL_BASE + SPECIALS.length * 2) {
    const spaced = (id - SPECIAL_BASE) % 2
    return (spaced ? ' ' : '') + (SPECIALS[Math.floor((id - SPECIAL_BASE) / 2)] ?? '')
  }
  if (id >= ALNUM_BASE) {
    const spaced = (id - ALNUM_BASE) % 2
    let value = Math.floor((id - ALNUM_BASE) / 2)
    let body = ''
    while (value > 0) {
      const digit = (value - 1) % 63
      body = ALNUM[digit] + body
      value = Math.floor((value - 1) / 63)
    }
    return (spaced ? ' ' : '') + body
  }
  if (id >= CHAR_BASE) {
    const spaced = (id - CHAR_BASE) % 2
    return (spaced ? ' ' : '') + String.fromCodePoint(Math.floor((id - CHAR_BASE) / 2))
  }
  return ''
}

function contentText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return (content as readonly ChatContentPart[])
    .map((part) => (typeof part.text === 'string' ? part.text : ''))
    .filter((text) => text.length > 0)
    .join('\n')
}

function roleMarker(role: string): string {
  const marker = `<|${role}|>`
  return (SPECIALS as readonly string[]).includes(marker) ? marker : '<|user|>'
}

export function createWordPieceTokenCounter(): TokenCounter {
  const count = (text: string): number => {
    PIECE.lastIndex = 0
    let n = 0
    while (PIECE.exec(text) !== null) n++
    return n
  }
  const renderChat = (messages: readonly ChatMessage[], addGenerationPrompt = true): string => {
    let prompt = ''
    for (const message of messages) prompt += roleMarker(message.role) + contentText(message.content)
    return addGenerationPrompt ? `${prompt}<|assistant|>` : prompt
  }
  return {
    name: 'word-piece',
    count,
    encode(text) {
      return (text.match(PIECE) ?? []).map(encodePiece)
    },
    decode(ids) {
      return ids.map(decodeId).join('')
    },
    renderChat,
    countChat(messages, addGenerationPrompt = true) {
      // One token per role marker, plus the content's own tokens; the role marker ends any piece,
      // so counting the parts equals counting the rendered prompt.
      let n = addGenerationPrompt ? 1 : 0
      for (const message of messages) n += 1 + count(contentText(message.content))
      return n
    },
  }
}
