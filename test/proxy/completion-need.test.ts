import { describe, expect, it } from 'vitest'
import { parseCompletionRequest, upstreamBody } from '../../src/proxy/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'

const tokens = createWordPieceTokenCounter()

describe('a completion request as admission sees it', () => {
  it('counts a chat prompt with the shared counter and prefers max_completion_tokens', () => {
    const request = parseCompletionRequest(
      'chat',
      {
        model: 'm',
        messages: [
          { role: 'system', content: ' be brief' },
          { role: 'user', content: ' hi there' },
        ],
        max_tokens: 50,
        max_completion_tokens: 20,
      },
      tokens,
    )
    // 2 role markers + 2 + 2 content tokens + the generation prompt.
    expect(request.promptTokens).toBe(7)
    expect(request.maxTokens).toBe(20)
    expect(request.sequences).toBe(1)
    expect(request.stream).toBe(false)
  })

  it('multiplies by n and by the prompts of a batched completions call, with vLLM default max_tokens', () => {
    const request = parseCompletionRequest('completion', { prompt: [' a b', [1, 2, 3]], n: 2 }, tokens)
    expect(request.sequences).toBe(4)
    expect(request.promptTokens).toBe((2 + 3) * 2)
    expect(request.maxTokens).toBe(16)
    expect(request.model).toBe('default')
  })

  it('asks upstream for usage on streams only, keeping the client options', () => {
    const streamed = parseCompletionRequest(
      'chat',
      { messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { continuous_usage_stats: true } },
      tokens,
    )
    expect(streamed.clientWantsUsage).toBe(true)
    expect(upstreamBody(streamed)['stream_options']).toEqual({ continuous_usage_stats: true, include_usage: true })
    const quiet = parseCompletionRequest('chat', { messages: [{ role: 'user', content: 'x' }], stream: true }, tokens)
    expect(quiet.clientWantsUsage).toBe(false)
    expect(upstreamBody(quiet)['stream_options']).toEqual({ include_usage: true })
    const plain = parseCompletionRequest('chat', { messages: [{ role: 'user', content: 'x' }] }, tokens)
    expect(upstreamBody(plain)).not.toHaveProperty('stream_options')
  })
})
