import { Writable } from 'node:stream'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { startFakeVllm, type FakeVllm } from '../proxy/fake-vllm.js'
import { metricValue, postJson, scrape, until } from './stack.js'

interface LogLine {
  msg: string
  sections?: string[]
  policyRebuilt?: boolean
  admissionRetuned?: boolean
}

/** A gateway in front of the fake vLLM (4,096 tokens of KV) whose log lines the test reads. */
async function start(raw: Record<string, unknown>) {
  const fake = await startFakeVllm()
  const lines: LogLine[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine)
      done()
    },
  })
  const base = { backends: [{ url: fake.url, name: 'fake' }], metricsPoll: { intervalMs: 20 }, ...raw }
  const gateway = await createGateway({ config: parseConfig(base), logger: pino(sink) })
  const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
  await until(() => gateway.backends()[0]?.usable || undefined)
  return { fake, gateway, url, lines, base }
}

// ~4 prompt tokens + the cold-start prediction (256, under max_tokens) ≈ 260 tokens of need.
const chat = { model: 'fake', messages: [{ role: 'user', content: 'hello' }], max_tokens: 1000 }

describe('config reload: admission tuning live, sameness by value', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
  })

  it('a reload of admission.headroomRatio takes effect without a restart, both ways', async () => {
    const stack = await start({ admission: { headroomRatio: 0.05, earlyReject: false } })
    ;({ fake, gateway } = stack)
    stack.fake.usage = 0.5 // 2,048 of 4,096 used: room 2,048 − 5% headroom ≈ 1,843, plenty for 260
    await until(() => (stack.gateway.backends()[0]?.usedTokens === 2048 ? true : undefined))
    expect((await postJson(`${stack.url}/v1/chat/completions`, chat)).status).toBe(200)

    // 45% headroom leaves 2,048 − 1,843 ≈ 205 tokens of room: the same request now waits.
    stack.gateway.reload(parseConfig({ ...stack.base, admission: { headroomRatio: 0.45, earlyReject: false } }))
    const waiting = postJson(`${stack.url}/v1/chat/completions`, chat)
    await until(() => (stack.gateway.queueDepth() === 1 ? true : undefined))
    // A later poll (each one dispatches) still finds too little room: 4,096 − 2,007 − 1,843 ≈ 246 < 260.
    stack.fake.usage = 0.49
    await until(() => (stack.gateway.backends()[0]?.usedTokens === 2007 ? true : undefined))
    expect(stack.gateway.queueDepth()).toBe(1)
    expect(stack.fake.received).toHaveLength(1) // nothing more was forwarded meanwhile

    stack.gateway.reload(parseConfig({ ...stack.base, admission: { headroomRatio: 0.05, earlyReject: false } }))
    expect((await waiting).status).toBe(200)
    expect(stack.gateway.ledgerReservedTokens()).toBe(0)

    const reloads = stack.lines.filter((l) => l.msg === 'config reloaded')
    expect(reloads.map((l) => l.admissionRetuned)).toEqual([true, true])
    expect(stack.lines.some((l) => l.msg.includes('only take effect after a restart'))).toBe(false)
  })

  it('a reload that only reorders keys keeps VTC counters; a changed option resets them', async () => {
    const config = {
      users: [{ name: 'alice', weight: 2, tokensPerMinute: 100_000 }],
      policy: { name: 'vtc', options: { wIn: 1, wOut: 2 } },
    }
    const stack = await start(config)
    ;({ fake, gateway } = stack)
    const counter = async (): Promise<number | undefined> =>
      metricValue(await scrape(stack.gateway.adminUrl()), 'kvgate_policy_virtual_tokens{user="alice"}')
    expect((await postJson(`${stack.url}/v1/chat/completions`, chat, { 'x-user-id': 'alice' })).status).toBe(200)
    const before = await counter()
    expect(before).toBeGreaterThan(0)

    // The same values, every object's keys in another order.
    stack.gateway.reload(
      parseConfig({
        policy: { options: { wOut: 2, wIn: 1 }, name: 'vtc' },
        users: [{ tokensPerMinute: 100_000, weight: 2, name: 'alice' }],
        metricsPoll: { intervalMs: 20 },
        backends: [{ name: 'fake', url: stack.fake.url }],
      }),
    )
    expect(await counter()).toBe(before)
    expect(stack.lines.findLast((l) => l.msg === 'config reloaded')?.policyRebuilt).toBe(false)
    // Nor is a reordered backends section a reason for the restart warning: values are compared.
    expect(stack.lines.some((l) => l.msg.includes('only take effect after a restart'))).toBe(false)

    // A real change does rebuild the policy (so the check above could fail): the counters start afresh.
    stack.gateway.reload(parseConfig({ ...stack.base, policy: { name: 'vtc', options: { wIn: 1, wOut: 3 } } }))
    expect(stack.lines.findLast((l) => l.msg === 'config reloaded')?.policyRebuilt).toBe(true)
    expect(await counter()).toBeUndefined()
  })

  it('warns about a restart only for what changed in value, naming the sections', async () => {
    const stack = await start({})
    ;({ fake, gateway } = stack)
    stack.gateway.reload(
      parseConfig({ ...stack.base, metricsPoll: { intervalMs: 25 }, admission: { maxBypassMs: 500 } }),
    )
    const warning = stack.lines.find((l) => l.msg.includes('only take effect after a restart'))
    expect(warning?.sections).toEqual(['metricsPoll'])
  })
})
