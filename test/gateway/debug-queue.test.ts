import { afterEach, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { createSeededRandom } from '../../src/core/index.js'
import { buildText } from '../../src/tokens/index.js'
import { startStack, until, type Stack } from './stack.js'

interface QueueAnswer {
  totals: { queued: number; queuedNeedTokens: number; users: number; maxRoomTokens: number | null }
  users: {
    user: string
    queued: number
    needTokens: number
    oldestWaitMs: number
    reasons: Record<string, number>
    items: {
      id: string
      model: string
      waitedMs: number
      needTokens: number
      promptTokens: number
      predictedOutputTokens: number
      reason: string
      quota?: { reason: string; retryAfterMs: number }
    }[]
  }[]
}

let seed = 0

describe('GET /debug/queue on the admin listener', () => {
  let stack: Stack | undefined
  const clients: AbortController[] = []
  afterEach(async () => {
    for (const client of clients.splice(0)) client.abort()
    await stack?.close()
    stack = undefined
  })

  /** A streaming chat request of about `promptTokens` + `maxTokens` that the test can cancel. */
  function send(user: string, promptTokens: number, maxTokens: number): Promise<number> {
    const client = new AbortController()
    clients.push(client)
    return request(`${stack?.url}/v1/chat/completions`, {
      method: 'POST',
      signal: client.signal,
      headers: { 'content-type': 'application/json', 'x-user-id': user },
      body: JSON.stringify({
        model: 'kvgate-sim',
        // Different words each time: the emulator's prefix cache would otherwise share their blocks.
        messages: [{ role: 'user', content: buildText(promptTokens, createSeededRandom(++seed)) }],
        max_tokens: maxTokens,
        ignore_eos: true,
        stream: true,
      }),
    })
      .then(async (response) => {
        await response.body.text()
        return response.statusCode
      })
      .catch(() => 499) // cancelled by the test
  }

  const queue = async (query = ''): Promise<QueueAnswer> => {
    const response = await request(`${stack?.adminUrl}/debug/queue${query}`)
    expect(response.statusCode).toBe(200)
    return (await response.body.json()) as QueueAnswer
  }

  it('shows each user queue with the reason every request waits, bounded, with totals', async () => {
    // 64 blocks × 16 = 1,024 tokens of KV; carol may start one request a minute.
    stack = await startStack({
      sim: { speed: 1, numGpuBlocks: 64 },
      config: {
        policy: { name: 'tpm' },
        identity: { order: ['header'] },
        users: [{ name: 'alice' }, { name: 'bob' }, { name: 'carol', requestsPerMinute: 1 }],
        // Patient clients: a quota that cannot clear before the deadline is answered on arrival instead.
        admission: { defaultDeadlineMs: 90_000 },
      },
    })
    expect(await send('carol', 10, 2)).toBe(200) // carol's one request this minute
    void send('bob', 500, 450) // admitted: holds ~760 of the 972 usable tokens for ~4 s
    await until(() => (stack?.gateway.ledgerReservedTokens() ?? 0) > 0 || undefined)
    void send('alice', 300, 50) // needs ~350: no room
    await until(async () => ((await queue()).totals.queued === 1 ? true : undefined))
    void send('alice', 300, 50) // behind alice's first
    void send('carol', 10, 2) // would fit, but over carol's quota
    const view = await until(async () => {
      const answer = await queue()
      const carol = answer.users.find((u) => u.user === 'carol')
      return answer.totals.queued === 3 && carol?.items[0]?.reason === 'quota' ? answer : undefined
    })

    expect(view.totals.users).toBe(2)
    expect(view.totals.maxRoomTokens).toBeLessThan(350)
    // Most queued first; within a user, oldest first.
    expect(view.users.map((u) => [u.user, u.queued, u.reasons])).toEqual([
      ['alice', 2, { no_room: 1, behind_own_requests: 1 }],
      ['carol', 1, { quota: 1 }],
    ])
    const [alice, carol] = view.users
    expect(alice?.items.map((i) => i.reason)).toEqual(['no_room', 'behind_own_requests'])
    expect(alice?.items[0]?.waitedMs).toBeGreaterThanOrEqual(alice?.items[1]?.waitedMs ?? Infinity)
    expect(alice?.oldestWaitMs).toBe(alice?.items[0]?.waitedMs)
    for (const item of alice?.items ?? []) {
      expect(item.model).toBe('kvgate-sim')
      expect(item.id).toMatch(/^kvg-/)
      expect(item.needTokens).toBe(item.promptTokens + item.predictedOutputTokens)
      expect(item.needTokens).toBeGreaterThan(view.totals.maxRoomTokens ?? 0)
    }
    expect(alice?.needTokens).toBe((alice?.items[0]?.needTokens ?? 0) + (alice?.items[1]?.needTokens ?? 0))
    expect(view.totals.queuedNeedTokens).toBe((alice?.needTokens ?? 0) + (carol?.needTokens ?? 0))
    expect(carol?.items[0]?.quota?.reason).toMatch(/request/)
    expect(carol?.items[0]?.quota?.retryAfterMs).toBeGreaterThan(0)

    // Bounded: one user, one item each, totals still whole; and one user by name.
    const page = await queue('?users=1&items=1')
    expect(page.totals.queued).toBe(3)
    expect(page.users.map((u) => [u.user, u.queued, u.items.length, u.reasons])).toEqual([
      ['alice', 2, 1, { no_room: 1, behind_own_requests: 1 }],
    ])
    expect((await queue('?user=carol')).users.map((u) => u.user)).toEqual(['carol'])
    expect((await queue('?user=nobody')).users).toEqual([])

    // Every client leaves: nothing stays queued or reserved.
    for (const client of clients.splice(0)) client.abort()
    await until(() => (stack?.gateway.queueDepth() === 0 && stack.gateway.ledgerReservedTokens() === 0) || undefined)
    expect((await queue()).users).toEqual([])
  })

  it('says no_backend while no backend is usable', async () => {
    stack = await startStack({ sim: { speed: 1, numGpuBlocks: 64 }, config: { metricsPoll: { staleAfterMs: 200 } } })
    void send('alice', 500, 450) // admitted, holds the KV for seconds
    await until(() => (stack?.gateway.ledgerReservedTokens() ?? 0) > 0 || undefined)
    void send('alice', 500, 300)
    await until(async () => ((await queue()).totals.queued === 1 ? true : undefined))
    expect((await queue()).users[0]?.reasons).toEqual({ no_room: 1 })
    // The backend's /metrics goes away: its figures go stale and it leaves admission.
    await request(`${stack.sim.url}/sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ metricsUnavailable: true }),
    }).then((r) => r.body.text())
    const view = await until(async () => {
      const answer = await queue()
      return answer.totals.maxRoomTokens === null ? answer : undefined
    })
    expect(view.users.map((u) => [u.user, u.reasons])).toEqual([['alice', { no_backend: 1 }]])
  })
})
