import { describe, expect, it } from 'vitest'
import {
  createRoutingHints,
  type RouteCandidate,
  type RouteRequest,
  type Router,
  routerFactories,
  routerNames,
} from '../../src/routing/index.js'
import { createWordPieceTokenCounter } from '../../src/tokens/index.js'

/**
 * The contract every router keeps, run against each registered one: it only ever picks one of the
 * candidates it was given, and only where the request fits (need − shared ≤ room); with nothing learnt
 * yet it is work-conserving (a request that fits somewhere is placed); choosing changes nothing until the
 * request is admitted; and its bookkeeping takes endings and resets it has never heard of.
 */
const tokens = createWordPieceTokenCounter()

const candidate = (backendId: string, roomTokens: number, extra: Partial<RouteCandidate> = {}): RouteCandidate => ({
  backendId,
  capacityTokens: 4096,
  roomTokens,
  waiting: 0,
  running: 0,
  blockSize: 16,
  ...extra,
})

let seq = 0
const requestOf = (text: string, needExtra = 100, model = 'm'): RouteRequest => {
  const ids = tokens.encode(text)
  return {
    id: `r${++seq}`,
    model,
    promptTokens: ids.length,
    needTokens: ids.length + needExtra,
    hints: createRoutingHints({ model, tokenIds: () => ids, arrivedAtMs: 0 }),
    waitedMs: 0,
  }
}

const words = (n: number, salt: string): string =>
  Array.from({ length: n }, (_, i) => ` w${salt}${i.toString(36)}`).join('')

describe.each(routerNames())('router contract: %s', (name) => {
  const make = (): Router => (routerFactories[name] as (c: { options: object }) => Router)({ options: {} })

  it('is registered under its own name', () => {
    expect(make().name).toBe(name)
  })

  it('picks only a given candidate, and only one the request fits', () => {
    const router = make()
    for (let i = 0; i < 50; i++) {
      const request = requestOf(words(40 + i, 'a'), 50 + i * 13)
      const candidates = [candidate('a', (i * 97) % 700), candidate('b', (i * 61) % 500), candidate('c', 120)]
      const choice = router.choose(request, candidates, i * 10)
      if (choice === undefined) continue
      const chosen = candidates.find((c) => c.backendId === choice.backendId)
      expect(chosen).toBeDefined()
      expect(request.needTokens - choice.sharedTokens).toBeLessThanOrEqual(chosen?.roomTokens ?? -Infinity)
      expect(choice.sharedTokens).toBeGreaterThanOrEqual(0)
      expect(choice.sharedTokens).toBeLessThanOrEqual(request.promptTokens)
      router.onAdmitted(request, choice, i * 10)
      if (i % 3 === 0) router.onFinished(request.id, i * 10 + 5)
    }
  })

  it('places a request that fits somewhere when it has learnt nothing yet', () => {
    const router = make()
    const request = requestOf(words(64, 'b'), 200)
    // Only c has room: every router must find it.
    const choice = router.choose(request, [candidate('a', 100), candidate('b', -50), candidate('c', 2000)], 0)
    expect(choice?.backendId).toBe('c')
    expect(router.choose(requestOf(words(8, 'c'), 5000), [candidate('a', 100), candidate('b', 200)], 0)).toBeUndefined()
  })

  it('changes nothing by choosing: the same question gets the same answer until an admission', () => {
    const router = make()
    const request = requestOf(words(64, 'd'))
    const candidates = [candidate('a', 1000), candidate('b', 1000), candidate('c', 1000)]
    const first = router.choose(request, candidates, 0)
    expect(router.choose(request, candidates, 0)).toEqual(first)
    expect(router.choose(request, candidates, 0)).toEqual(first)
  })

  it('takes endings and resets it never heard of', () => {
    const router = make()
    router.onFinished('never-admitted', 0)
    router.onBackendReset('no-such-backend')
    const request = requestOf(words(32, 'e'))
    const choice = router.choose(request, [candidate('a', 1000)], 0)
    expect(choice?.backendId).toBe('a')
    if (choice !== undefined) router.onAdmitted(request, choice, 0)
    router.onFinished(request.id, 1)
    router.onFinished(request.id, 2)
    router.onBackendReset('a')
    expect(router.choose(requestOf(words(32, 'f')), [candidate('a', 1000)], 3)?.backendId).toBe('a')
  })

  it('keeps nothing per request before admission', () => {
    const router = make()
    for (let i = 0; i < 1000; i++) router.choose(requestOf(words(20, `g${i}`)), [candidate('a', 1000)], i)
    const { indexBlocks = {}, sessions = 0 } = router.stats()
    expect(Object.values(indexBlocks).reduce((a, b) => a + b, 0)).toBe(0)
    expect(sessions).toBe(0)
  })
})
