import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { metricValue, postJson, promptOf, scrape, simCounter, startFleet, type FleetStack } from './fleet-stack.js'

/**
 * vLLM's context check, made at the gateway against the pool's max_model_len (1,024 here): a request vLLM
 * would refuse is answered 400 at once, in vLLM's words, without a queue slot or a reservation; an estimate
 * within the margin (25% by default) goes through for vLLM to decide.
 */
describe('context length at the gateway', () => {
  let fleet: FleetStack
  beforeAll(async () => {
    fleet = await startFleet({ sims: [{ name: 'sim0', model: 'llama', maxModelLen: 1024 }] })
  })
  afterAll(async () => {
    await fleet?.close()
  })

  const queuedEver = async (): Promise<number> => {
    const text = await scrape(fleet.gateway.adminUrl())
    return ['admitted', 'rejected', 'cancelled'].reduce(
      (n, result) => n + (metricValue(text, `kvgate_queue_wait_seconds_count{result="${result}"}`) ?? 0),
      0,
    )
  }
  const backendRequests = () => simCounter(fleet.sims[0]!, 'vllm:request_success_total')

  it('refuses a prompt longer than the context at once, without entering the queue', async () => {
    const [queuedBefore, servedBefore] = [await queuedEver(), await backendRequests()]
    const r = await postJson(`${fleet.url}/v1/chat/completions`, {
      model: 'llama',
      messages: [{ role: 'user', content: promptOf(1500) }],
      stream: true,
    })
    expect(r.status).toBe(400)
    // The rendered chat is the 1,500 words, the user marker and the generation prompt.
    expect(JSON.parse(r.text)).toEqual({
      error: {
        message:
          "This model's maximum context length is 1024 tokens. However, your request has 1502 input tokens. Please reduce the length of the input messages.",
        type: 'BadRequestError',
        param: 'input_tokens',
        code: 'context_length_exceeded',
      },
    })
    expect(await queuedEver()).toBe(queuedBefore)
    expect(fleet.gateway.queueDepth()).toBe(0)
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)
    expect(await backendRequests()).toBe(servedBefore)
  })

  it('refuses prompt + max_tokens beyond the context, as vLLM words it, once past the margin', async () => {
    const ask = (maxTokens: number) =>
      postJson(`${fleet.url}/v1/chat/completions`, {
        model: 'llama',
        messages: [{ role: 'user', content: promptOf(898) }],
        max_tokens: maxTokens,
      })
    // 900 estimated + 200 is over 1,024, but 75% of the estimate + 200 is not: vLLM decides, and refuses.
    const borderline = await ask(200)
    expect(borderline.status).toBe(400)
    expect(borderline.headers['x-kvgate-backend']).toBe('sim0')
    const r = await ask(400)
    expect(r.status).toBe(400)
    expect(JSON.parse(r.text).error).toEqual({
      message:
        "'max_tokens' or 'max_completion_tokens' is too large: 400. This model's maximum context length is 1024 tokens and your request has 900 input tokens (400 > 1024 - 900).",
      type: 'BadRequestError',
      param: 'max_tokens',
      code: 'context_length_exceeded',
    })
  })

  it('lets a borderline estimate through to vLLM, and checks exact token ids without a margin', async () => {
    const servedBefore = await backendRequests()
    // 1,100 estimated tokens: within 25% of 1,024, so the backend decides (it counts exactly, and refuses).
    const borderline = await postJson(`${fleet.url}/v1/completions`, { model: 'llama', prompt: promptOf(1100) })
    expect(borderline.status).toBe(400)
    expect(borderline.headers['x-kvgate-backend']).toBe('sim0')
    // vLLM's own refusal, re-told in OpenAI's shape (its numeric code becomes kvgate's string one).
    expect(JSON.parse(borderline.text).error).toMatchObject({ param: 'input_tokens', code: 'invalid_request' })
    expect(await queuedEver()).toBeGreaterThan(0)
    // Token ids count themselves: 1,100 of them are refused by the gateway.
    const ids = await postJson(`${fleet.url}/v1/completions`, {
      model: 'llama',
      prompt: Array.from({ length: 1100 }, (_, i) => 3_000_100 + i),
    })
    expect(ids.status).toBe(400)
    expect(ids.headers['x-kvgate-backend']).toBeUndefined()
    expect(JSON.parse(ids.text).error.message).toContain('your request has 1100 input tokens')
    // A prompt that fits is served.
    const fits = await postJson(`${fleet.url}/v1/completions`, { model: 'llama', prompt: promptOf(500), max_tokens: 4 })
    expect(fits.status).toBe(200)
    expect(await backendRequests()).toBe(servedBefore + 1)
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)
  })
})
