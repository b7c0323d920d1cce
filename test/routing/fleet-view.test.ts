import { describe, expect, it } from 'vitest'
import { createLedger } from '../../src/ledger/index.js'
import {
  createFleetView,
  createMostRoomRouter,
  createPrefixAwareRouter,
  createRoutingHints,
  type FleetBackend,
} from '../../src/routing/index.js'
import { createHarness, settle } from '../admission/harness.js'

/**
 * The fleet's capacity view under the real admission queue: a request is checked against its own pool (a
 * small pool's limit is not a large one's), a draining backend takes nothing new, and a prompt whose leading
 * blocks a request running on the chosen backend holds reserves only the rest (released exactly once).
 */
describe('the fleet view behind the admission queue', () => {
  const backend = (id: string, models: string[], capacityTokens: number, extra: Partial<FleetBackend> = {}) => ({
    id,
    capacityTokens,
    usedTokens: 0,
    usable: true,
    draining: false,
    models: new Set(models),
    waiting: 0,
    running: 0,
    blockSize: 16,
    ...extra,
  })

  const setup = (backends: FleetBackend[]) => {
    const ledger = createLedger()
    const router = createPrefixAwareRouter({ options: {} })
    // The view reads the harness's clock, which the harness makes: bound late.
    let now = (): number => 0
    const view = createFleetView({
      backends: () => backends,
      ledger,
      headroomRatio: () => 0,
      router: () => router,
      clock: { now: () => now() },
    })
    const h = createHarness({ ledger, capacity: view, capacities: [] })
    now = () => h.clock.now()
    return { h, ledger, backends }
  }
  const ids = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => 5_000 + offset + i)
  const hints = (tokens: readonly number[], model = 'small') =>
    createRoutingHints({ model, tokenIds: () => tokens, arrivedAtMs: 0 })

  it("checks a request against its own model's pool, and skips a draining backend", async () => {
    const { h } = setup([backend('s0', ['small'], 1_000), backend('big', ['large'], 100_000)])
    // 5,000 tokens fit no backend of `small`: 400 at once, although `large` has room for it.
    const tooBig = h.submit({ id: 'x', model: 'small', promptTokens: 5_000, predictedOutputTokens: 10 })
    const fits = h.submit({ id: 'y', model: 'large', promptTokens: 5_000, predictedOutputTokens: 10 })
    const unknown = h.submit({ id: 'z', model: 'other', promptTokens: 10, predictedOutputTokens: 10 })
    await settle()
    expect(tooBig.error?.code).toBe('request_exceeds_kv_capacity')
    expect(fits.admission?.backendId).toBe('big')
    expect(unknown.error?.code).toBe('no_backend_available')
    fits.admission?.finish(10)
  })

  it('leaves out of the reservation the blocks a running request on the backend holds, once', async () => {
    const { h, ledger, backends } = setup([backend('s0', ['small'], 10_000), backend('s1', ['small'], 10_000)])
    const system = ids(320)
    const first = h.submit({
      id: 'a',
      model: 'small',
      promptTokens: 370,
      predictedOutputTokens: 100,
      routing: hints([...system, ...ids(50, 1000)]),
    })
    await settle()
    const home = first.admission?.backendId as string
    // The other backend now has more room, but the shared system prompt pulls the second request home.
    const other = backends.find((b) => b.id !== home) as { usedTokens: number }
    other.usedTokens = 0
    const second = h.submit({
      id: 'b',
      model: 'small',
      promptTokens: 370,
      predictedOutputTokens: 100,
      routing: hints([...system, ...ids(50, 2000)]),
    })
    await settle()
    expect(second.admission?.backendId).toBe(home)
    expect(ledger.list().find((r) => r.requestId === 'b')?.promptTokens).toBe(50)
    expect(ledger.reservedTokens(home)).toBe(470 + 150)
    second.admission?.finish(100)
    second.admission?.finish(100)
    first.admission?.finish(100)
    expect(ledger.reservedTokens()).toBe(0)
    // The holder is gone: a third request sharing the prefix reserves its whole prompt again.
    const third = h.submit({
      id: 'c',
      model: 'small',
      promptTokens: 370,
      predictedOutputTokens: 100,
      routing: hints([...system, ...ids(50, 3000)]),
    })
    await settle()
    expect(ledger.list().find((r) => r.requestId === 'c')?.promptTokens).toBe(370)
    third.admission?.finish(100)
    expect(ledger.reservedTokens()).toBe(0)
  })

  it('admits nothing new on a draining backend', async () => {
    const { h, backends } = setup([
      backend('s0', ['small'], 1_000, { draining: true }),
      backend('s1', ['small'], 1_000),
    ])
    const r = h.submit({ id: 'd', model: 'small', promptTokens: 100, predictedOutputTokens: 100 })
    await settle()
    expect(r.admission?.backendId).toBe('s1')
    r.admission?.finish(1)
    ;(backends[1] as { draining: boolean }).draining = true
    const waits = h.submit({ id: 'e', model: 'small', promptTokens: 100, predictedOutputTokens: 100 })
    await settle()
    expect(waits.status).toBe('rejected')
    expect(waits.error?.code).toBe('no_backend_available')
  })
})

describe('the fleet view counts the room as admission does', () => {
  const gpu: FleetBackend = {
    id: 'g0',
    capacityTokens: 1_000,
    usedTokens: 600,
    usable: true,
    draining: false,
    models: new Set(['m']),
    waiting: 0,
    running: 1,
    blockSize: 16,
  }
  const ticket = {
    id: 't',
    user: { name: 'u', weight: 1 },
    model: 'm',
    promptTokens: 450,
    predictedOutputTokens: 50,
    deadlineMs: 1_000,
  }
  const view = (extra: Partial<Parameters<typeof createFleetView>[0]>) =>
    createFleetView({
      backends: () => [gpu],
      ledger: createLedger(),
      headroomRatio: () => 0,
      router: () => createMostRoomRouter({ options: {} }),
      clock: { now: () => 0 },
      ...extra,
    })
  const overcommit = (requests: number) => () => ({
    reserveBy: 'final' as const,
    overcommit: { ratio: 0, requests, maxBackendWaiting: 0 },
  })

  it('takes a shared ledger’s room over its own', () => {
    expect(view({}).snapshot()?.place(500, ticket)).toBeUndefined()
    // The shared store says more is free (another replica's reservation ended): 700 of room.
    expect(
      view({ room: () => 700 })
        .snapshot()
        ?.place(500, ticket),
    ).toMatchObject({ backendId: 'g0', roomTokens: 700 })
  })

  it('sends one request beyond the room under overcommit.requests, only while vLLM’s queue is short', () => {
    const snapshot = view({ rules: overcommit(1) }).snapshot()
    expect(snapshot?.maxRoomTokens).toBe(1_000)
    expect(snapshot?.place(500, ticket)).toEqual({ backendId: 'g0', roomTokens: 400 })
    // Never more than could run alone there.
    expect(snapshot?.place(1_001, ticket)).toBeUndefined()
    expect(
      view({ rules: overcommit(0) })
        .snapshot()
        ?.place(500, ticket),
    ).toBeUndefined()
    // A backend with requests in its own queue lends nothing.
    const queued = createFleetView({
      backends: () => [{ ...gpu, waiting: 3 }],
      ledger: createLedger(),
      headroomRatio: () => 0,
      router: () => createMostRoomRouter({ options: {} }),
      clock: { now: () => 0 },
      rules: overcommit(1),
    })
    expect(queued.snapshot()?.place(500, ticket)).toBeUndefined()
  })
})
