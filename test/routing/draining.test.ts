import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createManualClock } from '../../src/core/index.js'
import {
  drive,
  metricValue,
  postJson,
  promptOf,
  scrape,
  sseData,
  startFleet,
  until,
  type FleetStack,
} from './fleet-stack.js'

/**
 * Draining a backend: new admissions go elsewhere, the streams it runs finish whole. On one stepped clock
 * for the emulators and the gateway, so the streams are still running when the drain starts, however slow
 * the machine.
 */
describe('draining a backend', () => {
  const clock = createManualClock()
  let fleet: FleetStack
  beforeAll(async () => {
    fleet = await startFleet({
      clock,
      sims: [
        { name: 'gpu0', numGpuBlocks: 128 },
        { name: 'gpu1', numGpuBlocks: 128 },
      ],
      config: { metricsPoll: { intervalMs: 20, timeoutMs: 200, staleAfterMs: 300 } },
    })
  })
  afterAll(async () => {
    await fleet?.close()
  })

  const stream = (tokens: number) => {
    let done = false
    const pending = postJson(`${fleet.url}/v1/chat/completions`, {
      messages: [{ role: 'user', content: promptOf(50) }],
      max_tokens: tokens,
      ignore_eos: true,
      stream: true,
    }).finally(() => {
      done = true
    })
    return { pending, done: () => done }
  }
  const running = (i: number) => fleet.sims[i]?.engineState().running ?? 0

  it('admits nothing new to a draining backend and lets its streams finish', async () => {
    // Two long streams, one on each backend (most room alternates).
    const long = [stream(200), stream(200)]
    await drive(clock, () => running(0) === 1 && running(1) === 1, { stepMs: 2 })

    expect(fleet.gateway.setDraining('gpu0', true)).toBe(true)
    expect(fleet.gateway.setDraining('nope', true)).toBe(false)
    const health = (await (await request(`${fleet.url}/health`)).body.json()) as {
      backends: { name: string; draining: boolean }[]
    }
    expect(health.backends.map((b) => [b.name, b.draining])).toEqual([
      ['gpu0', true],
      ['gpu1', false],
    ])
    expect(metricValue(await scrape(fleet.gateway.adminUrl()), 'kvgate_backend_draining{backend="gpu0"}')).toBe(1)

    const short = Array.from({ length: 4 }, () => stream(5))
    await drive(clock, () => [...long, ...short].every((s) => s.done()), { stepMs: 2 })
    const longResults = await Promise.all(long.map((s) => s.pending))
    const shortResults = await Promise.all(short.map((s) => s.pending))
    // The stream on gpu0 ran to its end: 200 tokens, a usage-less [DONE]-terminated SSE body.
    for (const r of longResults) {
      expect(r.status).toBe(200)
      const data = sseData(r.text)
      expect(data.at(-1)).toBe('[DONE]')
      expect(data.filter((d) => d !== '[DONE]' && JSON.parse(d).choices?.[0]?.delta?.content)).toHaveLength(200)
    }
    expect(longResults.map((r) => r.headers['x-kvgate-backend']).sort()).toEqual(['gpu0', 'gpu1'])
    expect(shortResults.every((r) => r.status === 200 && r.headers['x-kvgate-backend'] === 'gpu1')).toBe(true)
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)
  })

  it('follows backends[].drain on reload, and takes new requests again when it is lifted', async () => {
    fleet.gateway.setDraining('gpu0', false)
    const base = fleet.gateway.config()
    const next = parseConfig({
      backends: base.backends.map((b) => ({ url: b.url, name: b.name, drain: b.name === 'gpu1' })),
      metricsPoll: base.metricsPoll,
    })
    fleet.gateway.reload(next)
    expect(fleet.gateway.backends().map((b) => b.draining)).toEqual([false, true])
    const after = Array.from({ length: 3 }, () => stream(5))
    await drive(clock, () => after.every((s) => s.done()), { stepMs: 2 })
    const results = await Promise.all(after.map((s) => s.pending))
    expect(results.every((r) => r.status === 200 && r.headers['x-kvgate-backend'] === 'gpu0')).toBe(true)
    // Every backend draining: nothing takes new work, the gateway says so and queues nothing.
    fleet.gateway.setDraining('gpu0', true)
    expect((await request(`${fleet.url}/health`)).statusCode).toBe(503)
    const refused = stream(5)
    await drive(clock, refused.done, { stepMs: 2 })
    expect((await refused.pending).status).toBe(503)
    await until(() => (fleet.gateway.queueDepth() === 0 ? true : undefined))
    expect(fleet.gateway.ledgerReservedTokens()).toBe(0)
  })
})

describe('the drain switch on the admin listener', () => {
  let fleet: FleetStack
  beforeAll(async () => {
    fleet = await startFleet({
      sims: [{ name: 'gpu0' }, { name: 'gpu1' }],
      config: { admin: { token: 'admin-token-0123456789' } },
    })
  })
  afterAll(async () => {
    await fleet?.close()
  })

  const post = async (path: string, token?: string) => {
    const r = await request(`${fleet.gateway.adminUrl()}${path}`, {
      method: 'POST',
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    })
    return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> }
  }

  it('drains and resumes a backend by name, behind the admin token, and 404s an unknown one', async () => {
    expect((await post('/admin/backends/gpu0/drain')).status).toBe(401)
    expect(fleet.gateway.backends().find((b) => b.id === 'gpu0')?.draining).toBe(false)
    expect(await post('/admin/backends/gpu0/drain', 'admin-token-0123456789')).toEqual({
      status: 200,
      body: { backend: 'gpu0', draining: true },
    })
    expect(fleet.gateway.backends().find((b) => b.id === 'gpu0')?.draining).toBe(true)
    // Never on the public port.
    expect((await request(`${fleet.url}/admin/backends/gpu0/resume`, { method: 'POST' })).statusCode).toBe(404)
    const missing = await post('/admin/backends/nope/drain', 'admin-token-0123456789')
    expect(missing.status).toBe(404)
    expect((missing.body['error'] as { code: string }).code).toBe('not_found')
    expect(await post('/admin/backends/gpu0/resume', 'admin-token-0123456789')).toEqual({
      status: 200,
      body: { backend: 'gpu0', draining: false },
    })
    expect(fleet.gateway.backends().find((b) => b.id === 'gpu0')?.draining).toBe(false)
  })
})
