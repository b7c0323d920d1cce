import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postJson, promptOf, sseData, startStack, until, type Stack } from './stack.js'

// A backend that stops answering while its /metrics still does: the forwarding timeouts end the request as
// an upstream error, and its KV reservation is released, instead of holding both until the client leaves.
describe('a wedged backend', () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await startStack({ config: { forwarding: { headersTimeoutMs: 400, idleTimeoutMs: 400 } } })
    // Every engine step now takes 60 emulated seconds: 3 real seconds at speed 20, far past both timeouts.
    stack.sim.setFaults({ latencySpikeRate: 1, latencySpikeMs: 60_000 })
  })
  afterAll(async () => {
    await stack.close()
  })

  it('ends a stream that goes silent with an error event and [DONE], and releases its reservation', async () => {
    const response = await postJson(`${stack.url}/v1/completions`, {
      model: 'kvgate-sim',
      prompt: promptOf(50),
      max_tokens: 20,
      stream: true,
    })
    expect(response.status).toBe(200)
    const events = sseData(response.text)
    expect(events.at(-1)).toBe('[DONE]')
    const error = JSON.parse(events.at(-2) ?? '') as { error: { code: string } }
    expect(error.error.code).toBe('upstream_error')
    await until(() => (stack.gateway.ledgerReservedTokens() === 0 ? true : undefined))
  })

  it('answers a non-streaming request whose answer never comes with 502 in OpenAI shape', async () => {
    const response = await postJson(`${stack.url}/v1/completions`, {
      model: 'kvgate-sim',
      prompt: promptOf(50),
      max_tokens: 20,
    })
    expect(response.status).toBe(502)
    const body = JSON.parse(response.text) as { error: { code: string; type: string; param: unknown } }
    expect(body.error).toMatchObject({ code: 'upstream_error', type: 'server_error', param: null })
    await until(() =>
      stack.gateway.ledgerReservedTokens() === 0 && stack.gateway.queueDepth() === 0 ? true : undefined,
    )
  })
})
