import { describe, expect, it } from 'vitest'
import { createSeededRandom } from '../../src/core/index.js'
import { buildText, createWordPieceTokenCounter } from '../../src/tokens/index.js'

const counter = createWordPieceTokenCounter()

describe('word-piece token counter', () => {
  it('counts words, punctuation and long runs as the contract says', () => {
    expect(counter.count(' the cat sat')).toBe(3)
    expect(counter.count('Hello, world!')).toBe(4)
    expect(counter.count('abcdefghij')).toBe(2) // split every 8 characters
    expect(counter.count('trailing   ')).toBe(1)
    expect(counter.count('')).toBe(0)
  })

  it('builds text of exactly N tokens', () => {
    const random = createSeededRandom(7)
    for (const n of [0, 1, 17, 500, 4096]) expect(counter.count(buildText(n, random))).toBe(n)
  })

  it('encodes and decodes round trip', () => {
    const text = ' Hello, world! 42 tokens\u00e9 and <|user|> markers'
    const ids = counter.encode(text)
    expect(ids).toHaveLength(counter.count(text))
    expect(counter.decode(ids)).toBe(text)
  })

  it('counts a chat prompt as its rendered text', () => {
    const messages = [
      { role: 'system', content: 'Be brief. ' },
      { role: 'user', content: [{ type: 'text', text: 'What is a KV cache?' }] },
      { role: 'assistant', content: null },
    ]
    const rendered = counter.renderChat(messages)
    expect(counter.countChat(messages)).toBe(counter.count(rendered))
    expect(counter.countChat(messages)).toBe(1 + 3 + (1 + 6) + (1 + 0) + 1) // role markers, 'Be brief.', 'What is a KV cache?', generation prompt
    expect(counter.countChat(messages, false)).toBe(counter.count(counter.renderChat(messages, false)))
  })
})
