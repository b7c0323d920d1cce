import { describe, expect, it } from 'vitest'
import {
  createPrefixAwareRouter,
  createRoutingHints,
  type RouteCandidate,
  type RouteRequest,
  type Router,
} from '../../src/routing/index.js'

/** A prompt as token ids: `shared` ids common to a conversation, then `own` ids of this turn. */
const prompt = (conversation: number, tokens: number): number[] =>
  Array.from({ length: tokens }, (_, i) => conversation * 100_000 + i)

let seq = 0
const request = (
  ids: readonly number[],
  options: { waitedMs?: number; sessionId?: string; output?: number } = {},
): RouteRequest => ({
  id: `r${++seq}`,
  model: 'm',
  promptTokens: ids.length,
  needTokens: ids.length + (options.output ?? 100),
  hints: createRoutingHints({
    model: 'm',
    tokenIds: () => ids,
    arrivedAtMs: 0,
    ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }),
  }),
  waitedMs: options.waitedMs ?? 0,
})

const backend = (backendId: string, roomTokens: number, extra: Partial<RouteCandidate> = {}): RouteCandidate => ({
  backendId,
  capacityTokens: 10_000,
  roomTokens,
  waiting: 0,
  running: 0,
  blockSize: 16,
  ...extra,
})

/** Admit `req` where the router says among `candidates`, and finish it at once. */
const serve = (router: Router, req: RouteRequest, candidates: readonly RouteCandidate[], nowMs = 0): string => {
  const choice = router.choose(req, candidates, nowMs)
  if (choice === undefined) throw new Error('not placed')
  router.onAdmitted(req, choice, nowMs)
  router.onFinished(req.id, nowMs)
  return choice.backendId
}

describe('prefix-aware routing', () => {
  it('sends a conversation back to the replica that served its earlier turns', () => {
    const router = createPrefixAwareRouter({ options: {} })
    const even = [backend('a', 8000), backend('b', 8000), backend('c', 8000)]
    // Turn 1 of three conversations: nothing cached, most room (here equal: the first listed) and spread as
    // the rooms change.
    const first = [
      serve(router, request(prompt(1, 500)), [backend('a', 9000), backend('b', 8000), backend('c', 8000)]),
      serve(router, request(prompt(2, 500)), [backend('a', 7000), backend('b', 9000), backend('c', 8000)]),
      serve(router, request(prompt(3, 500)), [backend('a', 7000), backend('b', 7000), backend('c', 9000)]),
    ]
    expect(first).toEqual(['a', 'b', 'c'])
    for (let turn = 2; turn <= 5; turn++) {
      for (const conversation of [1, 2, 3]) {
        const req = request(prompt(conversation, 500 * turn))
        const choice = router.choose(req, even, turn)
        expect(choice?.backendId).toBe(first[conversation - 1])
        expect(choice?.reason).toBe('affinity')
        expect(choice?.expectedHitTokens).toBe(Math.floor((500 * (turn - 1)) / 16) * 16)
        if (choice !== undefined) router.onAdmitted(req, choice, turn)
        router.onFinished(req.id, turn)
      }
    }
  })

  it('lets a much fuller replica lose its claim, and waits a bounded time for a full one that keeps it', () => {
    const router = createPrefixAwareRouter({ options: { affinityMaxLoadGap: 0.2, affinityWaitMs: 500 } })
    serve(router, request(prompt(1, 800)), [backend('a', 9000), backend('b', 5000)])
    const next = prompt(1, 1600)
    // a is 35 points fuller than b: the claim is lost, b takes it on score.
    expect(router.choose(request(next), [backend('a', 4000), backend('b', 7500)], 1)).toMatchObject({
      backendId: 'b',
      reason: 'score',
    })
    // 10 points fuller but no room for this request right now: wait for a ...
    expect(router.choose(request(next, { waitedMs: 100 }), [backend('a', 1000), backend('b', 2000)], 1)).toBeUndefined()
    // ... for at most affinityWaitMs, then go where it fits.
    expect(
      router.choose(request(next, { waitedMs: 500 }), [backend('a', 1000), backend('b', 2000)], 1)?.backendId,
    ).toBe('b')
  })

  it('scores hit, room and queue when there is no claim to keep', () => {
    const router = createPrefixAwareRouter({ options: { minHitBlocks: 1000 } })
    serve(router, request(prompt(1, 1600)), [backend('a', 9000), backend('b', 5000)])
    // minHitBlocks is out of reach, so no claim; the hit (1,600 of 6,400 tokens) still weighs in the score:
    // a scores 0.25 + 0.70 against b's 0.75 ...
    const req = request(prompt(1, 6400))
    expect(router.choose(req, [backend('a', 7000), backend('b', 7500)], 1)).toMatchObject({
      backendId: 'a',
      reason: 'score',
    })
    // ... until a long queue on a (30 waiting, 2 running: −0.5 × 30/33) outweighs it.
    expect(
      router.choose(req, [backend('a', 7000, { waiting: 30, running: 2 }), backend('b', 7500)], 1)?.backendId,
    ).toBe('b')
  })

  it('keeps a session on its replica when asked to, and leaves the need whole for blocks nobody holds', () => {
    const router = createPrefixAwareRouter({ options: { sessionAffinity: true } })
    const candidates = [backend('a', 9000), backend('b', 8000)]
    const r1 = request(prompt(1, 40), { sessionId: 's-1' })
    const c1 = router.choose(r1, [backend('a', 8000), backend('b', 9000)], 0)
    expect(c1?.backendId).toBe('b')
    if (c1 !== undefined) router.onAdmitted(r1, c1, 0)
    router.onFinished(r1.id, 1)
    // A different prompt, same session: back to b although a has more room.
    const r2 = request(prompt(9, 40), { sessionId: 's-1' })
    expect(router.choose(r2, candidates, 2)).toMatchObject({ backendId: 'b', reason: 'session', sharedTokens: 0 })
  })

  it('leaves out of the need the leading blocks requests running on the replica hold, and only those', () => {
    const router = createPrefixAwareRouter({ options: {} })
    const system = prompt(7, 320) // 20 blocks every request starts with
    const running = request([...system, ...prompt(8, 50)])
    const placed = router.choose(running, [backend('a', 9000)], 0)
    if (placed === undefined) throw new Error('not placed')
    router.onAdmitted(running, placed, 0)
    const next = request([...system, ...prompt(9, 50)])
    const withHolder = router.choose(next, [backend('a', 9000)], 1)
    expect(withHolder?.sharedTokens).toBe(320)
    // The room it needs is the need less the shared part: 300 of room take a 470-token need here.
    expect(router.choose(next, [backend('a', next.needTokens - 320)], 1)?.backendId).toBe('a')
    router.onFinished(running.id, 2)
    // Cached but free: vLLM takes those blocks out of its free list, so they count in full again.
    expect(router.choose(next, [backend('a', 9000)], 3)).toMatchObject({ sharedTokens: 0, expectedHitTokens: 320 })
    const off = createPrefixAwareRouter({ options: { uncachedNeed: false } })
    off.onAdmitted(running, { ...placed }, 0)
    expect(off.choose(next, [backend('a', 9000)], 1)?.sharedTokens).toBe(0)
  })
})
