import { describe, expect, it } from 'vitest'
import { createSeededRandom, createSseParser, parseSseData, randomInt, sseData } from '../../src/core/index.js'

const encoder = new TextEncoder()

function events(parts: readonly (Uint8Array | string)[]): { data: string[]; raw: string[] } {
  const seen = { data: [] as string[], raw: [] as string[] }
  const parser = createSseParser((data, raw) => {
    seen.data.push(data)
    seen.raw.push(raw)
  })
  for (const part of parts) parser.push(part)
  parser.end()
  return seen
}

describe('the shared SSE parser (src/core)', () => {
  it('joins a multi-byte UTF-8 character split across two network chunks', () => {
    const stream = encoder.encode('data: {"content":"h€llo ✓ 🙂"}\n\ndata: [DONE]\n\n')
    // "€" is three bytes (E2 82 AC): cut after its first byte, and the emoji (four bytes) in its middle.
    const euro = stream.indexOf(0xe2)
    const emoji = stream.indexOf(0xf0)
    const parts = [stream.subarray(0, euro + 1), stream.subarray(euro + 1, emoji + 2), stream.subarray(emoji + 2)]
    const seen = events(parts)
    expect(seen.data).toEqual(['{"content":"h€llo ✓ 🙂"}', '[DONE]'])
    expect(seen.raw.join('')).not.toContain('\uFFFD')
  })

  it('reads CRLF events, comments, multi-line data and a last event without its blank line', () => {
    const text = 'data: a\r\n\r\n: keep-alive\r\n\r\nevent: x\r\ndata: b1\r\ndata:b2\r\n\r\ndata: tail'
    const seen = events([text])
    expect(seen.data).toEqual(['a', '', 'b1\nb2', 'tail'])
    expect(seen.raw.join('')).toBe(text)
  })

  it('gives the same events, and the same bytes, however the stream is split', () => {
    const text = `data: {"x":"é"}\n\n: c\n\ndata: [DONE]\n\n${'data: {"y":"✓✓"}\r\n\r\n'.repeat(3)}data: last`
    const bytes = encoder.encode(text)
    const whole = events([bytes])
    const random = createSeededRandom(5)
    for (let trial = 0; trial < 200; trial++) {
      const cuts = Array.from({ length: randomInt(random, 1, 8) }, () => randomInt(random, 0, bytes.length)).sort(
        (a, b) => a - b,
      )
      const parts = [0, ...cuts].map((from, i) => bytes.subarray(from, [...cuts, bytes.length][i]))
      expect(events(parts)).toEqual(whole)
    }
    expect(whole.raw.join('')).toBe(text)
  })

  it('reads only `data` fields, with one optional space after the colon', () => {
    expect(sseData('data: x')).toBe('x')
    expect(sseData('data:x')).toBe('x')
    expect(sseData('data:  x')).toBe(' x')
    expect(sseData('database: no\ndata: yes')).toBe('yes')
    expect(sseData('id: 1')).toBe('')
  })

  it('parseSseData lists the data of a whole body, dropping comments', () => {
    expect(parseSseData('data: 1\n\n: ping\n\ndata: [DONE]\n\n')).toEqual(['1', '[DONE]'])
  })
})
