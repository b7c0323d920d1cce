import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { parseConfig } from '../../src/config/index.js'
import { createGateway, type Gateway } from '../../src/gateway/index.js'
import { type FakeVllm, startFakeVllm } from '../proxy/fake-vllm.js'
import { ADMIN_TOKEN, ALICE, chat, KEYED_IDENTITY, until } from './support.js'

describe('the admin listener, apart from the public one', () => {
  let fake: FakeVllm | undefined
  let gateway: Gateway | undefined
  afterEach(async () => {
    await gateway?.close()
    await fake?.close()
    gateway = undefined
  })

  async function start(raw: Record<string, unknown> = {}, adminRoutes = true) {
    fake = await startFakeVllm()
    gateway = await createGateway({
      config: parseConfig({
        backends: [{ url: fake.url, name: 'fake' }],
        metricsPoll: { intervalMs: 20 },
        identity: KEYED_IDENTITY,
        users: [{ name: 'alice' }],
        ...raw,
      }),
      logger: false,
      ...(adminRoutes
        ? {
            adminRoutes: [
              (admin, context) => {
                admin.get('/debug/queue-depth', async () => ({ queued: context.admission.queueDepth() }))
              },
            ],
          }
        : {}),
    })
    const url = await gateway.listen({ port: 0, host: '127.0.0.1' })
    await until(() => gateway?.backends()[0]?.usable || undefined)
    return { url, adminUrl: gateway.adminUrl() }
  }

  it('serves /metrics, /debug/* and registered admin routes there, and none of them on the public port', async () => {
    const { url, adminUrl } = await start()
    expect(new URL(adminUrl).hostname).toBe('127.0.0.1')
    expect(new URL(adminUrl).port).not.toBe(new URL(url).port)
    for (const path of ['/metrics', '/debug/reservations', '/debug/queue-depth']) {
      const publicAnswer = await request(`${url}${path}`, { headers: ALICE })
      expect({ path, status: publicAnswer.statusCode, body: await publicAnswer.body.json() }).toEqual({
        path,
        status: 404,
        body: {
          error: {
            message: `Unknown request URL: GET ${path}`,
            type: 'invalid_request_error',
            param: null,
            code: 'not_found',
          },
        },
      })
      const admin = await request(`${adminUrl}${path}`)
      expect(admin.statusCode, path).toBe(200)
      await admin.body.dump()
    }
    const metrics = await (await request(`${adminUrl}/metrics`)).body.text()
    expect(metrics).toContain('# TYPE kvgate_requests_total counter')
    expect(await (await request(`${adminUrl}/debug/queue-depth`)).body.json()).toEqual({ queued: 0 })
  })

  it('pages /debug/reservations, never past a bound, whatever a client asks for', async () => {
    const { url, adminUrl } = await start({ admission: { earlyReject: false } })
    // Full: everything waits in the queue.
    fake!.usage = 1
    await until(() => (gateway?.backends()[0]?.usedTokens === 4096 ? true : undefined))
    const waiting = Array.from({ length: 5 }, () =>
      request(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...ALICE },
        body: JSON.stringify(chat()),
      }).then((r) => r.body.dump()),
    )
    await until(() => (gateway?.queueDepth() === 5 ? true : undefined))
    const page = async (query: string) =>
      (await (await request(`${adminUrl}/debug/reservations${query}`)).body.json()) as {
        page: Record<string, unknown>
        queued: { id: string }[]
        totals: { queued: number }
      }
    const first = await page('?limit=2')
    expect(first.page).toEqual({ offset: 0, limit: 2, reservations: 0, queued: 5, next: 2 })
    expect(first.queued).toHaveLength(2)
    const last = await page('?limit=2&offset=4')
    expect(last.page).toMatchObject({ offset: 4, limit: 2, next: null })
    expect(last.queued).toHaveLength(1)
    expect(
      new Set([...first.queued, ...(await page('?limit=2&offset=2')).queued, ...last.queued].map((q) => q.id)).size,
    ).toBe(5)
    // A client asking for a million gets the cap, one asking nonsense the default.
    expect((await page('?limit=1000000')).page).toMatchObject({ limit: 1000 })
    expect((await page('?limit=-3&offset=x')).page).toMatchObject({ offset: 0, limit: 100 })
    expect(first.totals.queued).toBe(5)
    fake!.usage = 0
    await Promise.all(waiting)
    await until(() => (gateway?.ledgerReservedTokens() === 0 ? true : undefined))
  })

  it('asks for admin.token on every admin route but /health, compared in constant time', async () => {
    const { adminUrl } = await start({ admin: { token: ADMIN_TOKEN } })
    const missing = await request(`${adminUrl}/metrics`)
    expect({ status: missing.statusCode, body: await missing.body.json() }).toEqual({
      status: 401,
      body: {
        error: {
          message: 'You did not provide an API key. Pass it as "Authorization: Bearer KEY".',
          type: 'authentication_error',
          param: null,
          code: 'missing_api_key',
        },
      },
    })
    // A client's API key is not the admin token.
    const wrong = await request(`${adminUrl}/debug/reservations`, { headers: ALICE })
    expect(wrong.statusCode).toBe(401)
    expect(await wrong.body.json()).toMatchObject({ error: { code: 'invalid_api_key' } })
    const ok = await request(`${adminUrl}/./metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    expect(ok.statusCode).toBe(200)
    await ok.body.dump()
    expect((await request(`${adminUrl}/health`)).statusCode).toBe(200)
  })
})
