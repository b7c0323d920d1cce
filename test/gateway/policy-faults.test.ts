import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { policyFactories, type Policy, type PolicyFactory } from '../../src/policies/index.js'
import { startFakeVllm, type FakeVllm } from '../proxy/fake-vllm.js'
import { metricValue, postJson, scrape, until } from './stack.js'

/** fifo, except that it throws in onAdmit for bob's requests and in onFinish for carol's. */
const faultyFifo: PolicyFactory = (context) => {
  const base = (policyFactories['fifo'] as PolicyFactory)(context)
  const policy: Policy = {
    ...base,
    onAdmit(request, nowMs) {
      if (request.user.name === 'bob') throw new Error('policy bug in onAdmit')
      base.onAdmit(request, nowMs)
    },
    onFinish(request, completionTokens, nowMs) {
      if (request.user.name === 'carol') throw new Error('policy bug in onFinish')
      base.onFinish(request, completionTokens, nowMs)
    },
  }
  return policy
}

const chat = { model: 'fake', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }

describe('a policy that throws, through the real gateway over HTTP', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
  })

  it('answers the request it failed on 500 internal_error, keeps a finished one completed, and leaks nothing', async () => {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        metricsPoll: { intervalMs: 20 },
        users: [{ name: 'alice' }, { name: 'bob' }, { name: 'carol' }],
        admission: { earlyReject: false },
      }),
      logger: false,
      // The built-in name, so the config validates; the factory is the faulty one.
      policies: { fifo: faultyFifo },
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)
    const post = (user: string) => postJson(`${url}/v1/chat/completions`, chat, { 'x-user-id': user })

    // onAdmit throws while bob's request is admitted: an answer in OpenAI's shape, not a hang.
    const bob = await post('bob')
    expect(bob.status).toBe(500)
    expect(JSON.parse(bob.text)).toEqual({
      error: {
        message: 'Internal error: the fairness policy failed while admitting',
        type: 'server_error',
        param: null,
        code: 'internal_error',
      },
    })
    expect(bob.headers['x-kvgate-request-id']).toMatch(/^kvg-/)

    // onFinish throws after carol's request completed: she got her answer, and it is counted as completed.
    const carol = await post('carol')
    expect(carol.status).toBe(200)

    // The queue still works after the faults: requests that waited for room are admitted when it comes (that a
    // throwing onFinish still runs the dispatcher is asserted without polls in test/admission/policy-faults).
    fake.usage = 0.99
    await until(() => (gateway?.backends()[0]?.usedTokens === Math.round(0.99 * 4096) ? true : undefined))
    const queued = [post('alice'), post('carol')]
    await until(() => (gateway?.queueDepth() === 2 ? true : undefined))
    fake.usage = 0
    expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200])

    const text = await scrape(gateway!.adminUrl())
    expect(metricValue(text, 'kvgate_requests_total{outcome="internal_error",user="bob"}')).toBe(1)
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="carol"}')).toBe(2)
    expect(metricValue(text, 'kvgate_requests_total{outcome="upstream_error",user="carol"}')).toBeUndefined()
    expect(metricValue(text, 'kvgate_requests_total{outcome="completed",user="alice"}')).toBe(1)
    // One onAdmit fault and two onFinish faults, each logged and counted.
    expect(metricValue(text, 'kvgate_internal_errors_total{component="policy"}')).toBe(3)
    expect(gateway.ledgerReservedTokens()).toBe(0)
    expect(gateway.queueDepth()).toBe(0)
    // Nothing of bob's reached the backend.
    expect(fake.received.filter((r) => r.url === '/v1/chat/completions')).toHaveLength(3)
  })
})
