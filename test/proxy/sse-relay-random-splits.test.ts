import { describe, expect, it } from 'vitest'
import { createSseRelay, type SseRelay } from '../../src/proxy/index.js'
import { createSeededRandom, randomInt } from '../../src/core/index.js'

// For any way the network splits a stream (CRLF, comments, errors, multi-line and unterminated events
// included), the relay forwards the same bytes and reports the same tokens, usage, errors and flags as for
// the whole stream in one chunk. Only the number of write() calls may differ. (This began as the check that
// the candidate relay of docs/benchmarks.md finding 2 was a drop-in; it was adopted in 823e40b.)

const encoder = new TextEncoder()
const chat = (content: string, crlf = false) => {
  const end = crlf ? '\r\n\r\n' : '\n\n'
  return `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"finish_reason":null}]}${end}`
}
const usage =
  'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}\n\n'
const streams = [
  `${chat('') + chat(' héllo') + chat(' ✓') + chat(' c') + usage}data: [DONE]\n\n`,
  `${chat(' a')}: keep-alive comment\n\n${chat(' b')}data: {"error":{"message":"boom","code":500}}\n\ndata: [DONE]\n\n`,
  `${chat(' x', true) + chat(' y', true)}data: [DONE]\r\n\r\n`,
  'event: message\ndata: {"choices":[{"index":0,"text":" multi"}]}\n\n' + 'data: not json\n\n' + 'data: [DONE]',
]

interface Seen {
  text: string
  writes: string[]
  tokens: number
  first: number
  relay: SseRelay
}

function feed(parts: readonly Uint8Array[], stripUsageChunk: boolean): Seen {
  const seen = { text: '', writes: [] as string[], tokens: 0, first: 0 }
  const relay = createSseRelay({
    stripUsageChunk,
    write: (text) => {
      seen.writes.push(text)
      seen.text += text
    },
    onTokens: (n) => (seen.tokens += n),
    onFirstContent: () => (seen.first += 1),
  })
  for (const part of parts) relay.push(part)
  relay.end()
  return { ...seen, relay }
}

describe('SSE relay on randomly split streams', () => {
  it('matches the unsplit stream on every stream, split at random places', () => {
    const random = createSeededRandom(7)
    for (const stream of streams) {
      const bytes = encoder.encode(stream)
      for (let trial = 0; trial < 50; trial += 1) {
        const parts: Uint8Array[] = []
        for (let at = 0; at < bytes.length; ) {
          const size = randomInt(random, 1, 40)
          parts.push(bytes.slice(at, at + size))
          at += size
        }
        for (const strip of [false, true]) {
          const whole = feed([bytes], strip)
          const split = feed(parts, strip)
          expect(split.text).toBe(whole.text)
          expect(split.tokens).toBe(whole.tokens)
          expect(split.first).toBe(whole.first)
          expect(split.relay.usage).toEqual(whole.relay.usage)
          expect(split.relay.upstreamError).toEqual(whole.relay.upstreamError)
          expect(split.relay.sawDone).toBe(whole.relay.sawDone)
          expect(whole.writes.length).toBeLessThanOrEqual(split.writes.length)
        }
      }
    }
  })

  it('writes once per network chunk however many events it carries', () => {
    // Adopted from the benchmark's candidate in 823e40b; before, the relay wrote once per event (4 writes here).
    const text = `${chat(' a') + chat(' b') + chat(' c')}data: [DONE]\n\n`
    const relay = feed([encoder.encode(text)], false)
    expect(relay.writes).toEqual([text])
  })
})
