import { describe, expect, it } from 'vitest'
import { createSseRelay } from '../../src/proxy/index.js'

const encoder = new TextEncoder()
const chunk = (content: string) =>
  `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"finish_reason":null}]}\n\n`
const usage =
  'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n'

describe('SSE relay', () => {
  it('passes events on whole, even when the network splits them, and counts tokens', () => {
    const out: string[] = []
    let first = 0
    let counted = 0
    const relay = createSseRelay({
      stripUsageChunk: false,
      write: (text) => out.push(text),
      onFirstContent: () => first++,
      onTokens: (n) => (counted += n),
    })
    const stream = `${chunk('') + chunk(' a') + chunk(' b') + chunk(' c') + usage}data: [DONE]\n\n`
    const bytes = encoder.encode(stream)
    // Split at every 7th byte, across event boundaries and inside JSON.
    for (let i = 0; i < bytes.length; i += 7) relay.push(bytes.slice(i, i + 7))
    relay.end()
    expect(out.join('')).toBe(stream)
    expect(out.every((event) => event.endsWith('\n\n'))).toBe(true)
    expect(first).toBe(1)
    expect(counted).toBe(3)
    expect(relay.usage).toEqual({ promptTokens: 5, completionTokens: 3 })
    expect(relay.sawDone).toBe(true)
  })

  it('strips the usage chunk, lets the usage settle an undercount, and notices in-stream errors', () => {
    const out: string[] = []
    const relay = createSseRelay({ stripUsageChunk: true, write: (text) => out.push(text) })
    relay.push(encoder.encode(`${chunk(' ab') + usage}data: {"error":{"message":"boom","code":500}}\n\n`))
    relay.end()
    expect(out.join('')).not.toContain('usage')
    expect(relay.completionTokens).toBe(3)
    expect(relay.upstreamError).toEqual({ message: 'boom', code: 500 })
    expect(relay.sawDone).toBe(false)
  })

  it('keeps a multi-byte character split across chunks intact', () => {
    const out: string[] = []
    const relay = createSseRelay({ stripUsageChunk: false, write: (text) => out.push(text) })
    const bytes = encoder.encode(chunk(' héllo ✓'))
    const cut = bytes.indexOf(0xe2) + 1 // inside the 3-byte check mark
    relay.push(bytes.slice(0, cut))
    relay.push(bytes.slice(cut))
    relay.end()
    expect(out.join('')).toBe(chunk(' héllo ✓'))
  })
})
