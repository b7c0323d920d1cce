import { describe, expect, it } from 'vitest'
import { createSseRelay } from '../../src/proxy/index.js'

/**
 * The relay forwards every complete event of an upstream chunk in one write; however the network cuts the
 * stream, the client must get the same bytes and the gateway must count the same tokens.
 */
const encoder = new TextEncoder()
const chat = (content: string) =>
  `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"finish_reason":null}]}\n\n`
const usage = (completion: number) =>
  `data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":${completion},"total_tokens":${5 + completion}}}\n\n`

interface Run {
  text: string
  writes: string[]
  tokens: number
  firstContent: number
  completionTokens: number
  usage: unknown
  sawDone: boolean
  upstreamError: unknown
}

function relayParts(parts: readonly Uint8Array[], stripUsageChunk: boolean): Run {
  const writes: string[] = []
  let tokens = 0
  let firstContent = 0
  const relay = createSseRelay({
    stripUsageChunk,
    write: (text) => writes.push(text),
    onFirstContent: () => firstContent++,
    onTokens: (n) => (tokens += n),
  })
  for (const part of parts) relay.push(part)
  relay.end()
  return {
    text: writes.join(''),
    writes,
    tokens,
    firstContent,
    completionTokens: relay.completionTokens,
    usage: relay.usage,
    sawDone: relay.sawDone,
    upstreamError: relay.upstreamError,
  }
}

const summary = (run: Run) => ({ ...run, writes: undefined })

// vLLM's single-line events, a comment, a multi-line data event, an in-stream error, the usage chunk, [DONE].
const stream =
  chat('') +
  chat(' héllo') +
  ': keep-alive\n\n' +
  chat(' ✓') +
  'data: {"id":"c","choices":[{"index":0,\ndata: "delta":{"content":" x"}}]}\n\n' +
  chat(' y') +
  'data: {"error":{"message":"late","code":500}}\n\n' +
  usage(6) +
  'data: [DONE]\n\n'

describe('SSE relay chunking', () => {
  for (const stripUsageChunk of [false, true]) {
    it(`forwards the same bytes and counts the same tokens wherever the stream is cut (strip usage: ${stripUsageChunk})`, () => {
      const bytes = encoder.encode(stream)
      const whole = relayParts([bytes], stripUsageChunk)
      const expected = stripUsageChunk ? stream.replace(usage(6), '') : stream
      expect(whole.text).toBe(expected)
      expect(whole).toMatchObject({ tokens: 6, firstContent: 1, completionTokens: 6, sawDone: true })
      expect(whole.usage).toEqual({ promptTokens: 5, completionTokens: 6 })
      expect(whole.upstreamError).toEqual({ message: 'late', code: 500 })
      // Every event of the chunk went out in one write.
      expect(whole.writes).toHaveLength(1)

      // Cut in two at every byte boundary.
      for (let cut = 1; cut < bytes.length; cut++) {
        const run = relayParts([bytes.slice(0, cut), bytes.slice(cut)], stripUsageChunk)
        expect(summary(run), `cut at byte ${cut}`).toEqual(summary(whole))
        expect(run.writes.every((text) => text.endsWith('\n\n'))).toBe(true)
      }
      // One byte at a time.
      const bytewise = relayParts(
        Array.from(bytes, (_, i) => bytes.slice(i, i + 1)),
        stripUsageChunk,
      )
      expect(summary(bytewise)).toEqual(summary(whole))
      // Several events per chunk, with chunk edges falling inside events.
      for (const size of [64, 300, 1000]) {
        const parts: Uint8Array[] = []
        for (let at = 0; at < bytes.length; at += size) parts.push(bytes.slice(at, at + size))
        const run = relayParts(parts, stripUsageChunk)
        expect(summary(run), `chunks of ${size} bytes`).toEqual(summary(whole))
        expect(run.writes.length).toBeLessThanOrEqual(parts.length)
      }
    })
  }

  it('finds CRLF event ends, also when a CRLF pair is cut between chunks', () => {
    const crlf = stream.replace(/\n/g, '\r\n')
    const bytes = encoder.encode(crlf)
    const whole = relayParts([bytes], false)
    expect(whole.text).toBe(crlf)
    expect(whole).toMatchObject({ tokens: 6, firstContent: 1, sawDone: true })
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(summary(relayParts([bytes.slice(0, cut), bytes.slice(cut)], false)), `cut at byte ${cut}`).toEqual(
        summary(whole),
      )
    }
  })

  it('passes on a final event the upstream left unterminated, after the complete ones', () => {
    const run = relayParts([encoder.encode(`${chat(' a')}data: [DONE]`)], false)
    expect(run.text).toBe(`${chat(' a')}data: [DONE]`)
    expect(run.sawDone).toBe(true)
    expect(run.tokens).toBe(1)
  })
})
