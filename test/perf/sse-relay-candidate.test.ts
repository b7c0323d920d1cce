import { describe, expect, it } from 'vitest'
import { createSseRelay, type SseRelay, type SseRelayOptions } from '../../src/proxy/index.js'
import { createCandidateSseRelay } from '../../bench/perf/lib/sse-relay-candidate.js'
import { createSeededRandom, randomInt } from '../../src/core/index.js'

// The candidate relay of docs/benchmarks.md (finding 2, since adopted by src/proxy/sse-relay.ts) must be a
// drop-in: for any way the network splits a stream, it forwards the same bytes and reports the same tokens,
// usage, errors and flags as the shipped relay. Only the number of write() calls may differ.

const encoder = new TextEncoder()
const chat = (content: string, crlf = false) => {
  const end = crlf ? '\r\n\r\n' : '\n\n'
  return `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"finish_reason":null}]}${end}`
}
const usage = 'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}\n\n'
const streams = [
  chat('') + chat(' héllo') + chat(' ✓') + chat(' c') + usage + 'data: [DONE]\n\n',
  chat(' a') + ': keep-alive comment\n\n' + chat(' b') + 'data: {"error":{"message":"boom","code":500}}\n\n' + 'data: [DONE]\n\n',
  chat(' x', true) + chat(' y', true) + 'data: [DONE]\r\n\r\n',
  'event: message\ndata: {"choices":[{"index":0,"text":" multi"}]}\n\n' + 'data: not json\n\n' + 'data: [DONE]',
]

interface Seen {
  text: string
  writes: string[]
  tokens: number
  first: number
  relay: SseRelay
}

function feed(factory: (options: SseRelayOptions) => SseRelay, parts: readonly Uint8Array[], stripUsageChunk: boolean): Seen {
  const seen = { text: '', writes: [] as string[], tokens: 0, first: 0 }
  const relay = factory({
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

describe('candidate SSE relay', () => {
  it('matches the shipped relay on every stream, split at random places', () => {
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
          const shipped = feed(createSseRelay, parts, strip)
          const candidate = feed(createCandidateSseRelay, parts, strip)
          expect(candidate.text).toBe(shipped.text)
          expect(candidate.tokens).toBe(shipped.tokens)
          expect(candidate.first).toBe(shipped.first)
          expect(candidate.relay.usage).toEqual(shipped.relay.usage)
          expect(candidate.relay.upstreamError).toEqual(shipped.relay.upstreamError)
          expect(candidate.relay.sawDone).toBe(shipped.relay.sawDone)
          expect(candidate.writes.length).toBeLessThanOrEqual(shipped.writes.length)
        }
      }
    }
  })

  it('writes once per network chunk however many events it carries', () => {
    // The shipped relay adopted this in 823e40b; before it wrote once per event (4 writes here).
    const text = chat(' a') + chat(' b') + chat(' c') + 'data: [DONE]\n\n'
    const candidate = feed(createCandidateSseRelay, [encoder.encode(text)], false)
    expect(candidate.writes).toEqual([text])
  })
})
