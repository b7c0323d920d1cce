import type { PolicyRequest, PolicyUser } from '../../src/policies/index.js'

/** Build requests with unique ids for a user; `predicted` defaults to the output actually produced later. */
export function createRequestFactory() {
  let next = 0
  return (user: PolicyUser, nowMs: number, promptTokens = 100, predictedOutputTokens = 100): PolicyRequest => ({
    id: `r${next++}`,
    user,
    promptTokens,
    predictedOutputTokens,
    enqueuedAtMs: nowMs,
  })
}

export function take<T>(iterable: Iterable<T>, n = Number.POSITIVE_INFINITY): T[] {
  const out: T[] = []
  if (n <= 0) return out
  for (const item of iterable) {
    out.push(item)
    if (out.length >= n) break
  }
  return out
}

const BACKLOG_DEPTH = 8

export interface SimUser {
  readonly user: PolicyUser
  /** Mean arrivals per second (Poisson); Infinity = always a few waiting (continuously backlogged). */
  readonly ratePerSecond: number
  readonly promptTokens: number
  readonly outputTokens: number
  /** What the policy is told at admission; defaults to outputTokens (an exact predictor). */
  readonly predictedOutputTokens?: number
  /** Users may start late or stop early. */
  readonly fromMs?: number
  readonly untilMs?: number
}

export interface SimResult {
  /** Weighted service per user over time: (wIn·prompt admitted + wOut·completion streamed) / weight. */
  readonly samples: { atMs: number; service: Map<string, number> }[]
  readonly service: Map<string, number>
  /** Tokens (prompt + predicted) admitted per user, with the admission time. */
  readonly admissions: { atMs: number; user: string; tokens: number; waitedMs: number }[]
}

/**
 * A policy-only simulation with a KV model of `capacityTokens`: the dispatcher walks candidates, skips
 * quota-blocked heads, admits while prompt + predicted fits (strict head-of-line otherwise), and every
 * running request streams one token per `stepMs`. Deterministic for a seed. The fairness tests use the
 * real admission controller; this one isolates the policy.
 */
export function simulatePolicy(
  policy: import('../../src/policies/index.js').Policy,
  options: {
    users: readonly SimUser[]
    capacityTokens: number
    durationMs: number
    stepMs?: number
    seed?: number
    wIn?: number
    wOut?: number
    sampleEveryMs?: number
    servedTokensPerMinute?: (nowMs: number) => number
  },
): SimResult {
  const stepMs = options.stepMs ?? 20
  const wIn = options.wIn ?? 1
  const wOut = options.wOut ?? 2
  const random = { s: options.seed ?? 1 }
  const next = (): number => {
    // xorshift: deterministic and independent of the package's Random so the helper stays self-contained.
    let x = random.s | 0 || 1
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    random.s = x
    return (x >>> 0) / 4294967296
  }
  const makeRequest = createRequestFactory()
  const queues = new Map<string, PolicyRequest[]>()
  const running: { request: PolicyRequest; produced: number; target: number; weight: number }[] = []
  const service = new Map<string, number>(options.users.map((u) => [u.user.name, 0]))
  const samples: SimResult['samples'] = []
  const admissions: SimResult['admissions'] = []
  const nextArrival = new Map<string, number>()
  let used = 0
  // Served tokens over the last minute as a deque with a running sum (a filter per step would be O(n²)).
  const servedWindow: { atMs: number; tokens: number }[] = []
  let servedHead = 0
  let servedSum = 0
  const serve = (atMs: number, tokens: number): void => {
    servedWindow.push({ atMs, tokens })
    servedSum += tokens
  }

  const enqueue = (u: SimUser, nowMs: number): void => {
    const request = makeRequest(u.user, nowMs, u.promptTokens, u.predictedOutputTokens ?? u.outputTokens)
    queues.set(u.user.name, [...(queues.get(u.user.name) ?? []), request])
    policy.onEnqueue(request, nowMs)
  }
  const dispatch = (nowMs: number): void => {
    for (;;) {
      let admitted = false
      for (const name of policy.candidates(nowMs)) {
        const head = queues.get(name)?.[0]
        if (head === undefined) continue
        if (!policy.checkQuota(head, nowMs).allowed) continue
        const need = head.promptTokens + head.predictedOutputTokens
        if (used + need > options.capacityTokens) break // strict head-of-line: equal-sized workloads
        queues.get(name)?.shift()
        if (queues.get(name)?.length === 0) queues.delete(name)
        policy.onAdmit(head, nowMs)
        used += need
        const u = options.users.find((x) => x.user.name === name) as SimUser
        running.push({ request: head, produced: 0, target: u.outputTokens, weight: head.user.weight })
        service.set(name, (service.get(name) ?? 0) + (wIn * head.promptTokens) / head.user.weight)
        admissions.push({ atMs: nowMs, user: name, tokens: need, waitedMs: nowMs - head.enqueuedAtMs })
        serve(nowMs, head.promptTokens)
        admitted = true
        break
      }
      if (!admitted) return
    }
  }

  for (let nowMs = 0; nowMs <= options.durationMs; nowMs += stepMs) {
    // Arrivals.
    for (const u of options.users) {
      if (nowMs < (u.fromMs ?? 0) || nowMs >= (u.untilMs ?? Number.POSITIVE_INFINITY)) continue
      if (u.ratePerSecond === Number.POSITIVE_INFINITY) {
        // Several waiting, so a user is never briefly empty between two admissions in one step.
        while ((queues.get(u.user.name)?.length ?? 0) < BACKLOG_DEPTH) enqueue(u, nowMs)
        continue
      }
      let at = nextArrival.get(u.user.name) ?? nowMs
      while (at <= nowMs) {
        enqueue(u, nowMs)
        at += (-Math.log(1 - next()) / u.ratePerSecond) * 1_000
      }
      nextArrival.set(u.user.name, at)
    }
    // One decode step for every running request.
    for (let i = running.length - 1; i >= 0; i--) {
      const r = running[i] as (typeof running)[number]
      r.produced++
      policy.onTokens(r.request, 1, nowMs)
      service.set(r.request.user.name, (service.get(r.request.user.name) ?? 0) + wOut / r.weight)
      serve(nowMs, 1)
      if (r.produced >= r.target) {
        running.splice(i, 1)
        used -= r.request.promptTokens + r.request.predictedOutputTokens
        policy.onFinish(r.request, r.produced, nowMs)
      }
    }
    while (servedHead < servedWindow.length && (servedWindow[servedHead]?.atMs ?? 0) <= nowMs - 60_000) {
      servedSum -= servedWindow[servedHead]?.tokens ?? 0
      servedHead++
    }
    const servedPerMinute =
      options.servedTokensPerMinute?.(nowMs) ?? (servedSum * 60_000) / Math.max(stepMs, Math.min(nowMs, 60_000))
    policy.onTick(nowMs, { servedTokensPerMinute: servedPerMinute })
    dispatch(nowMs)
    if (nowMs % (options.sampleEveryMs ?? 1_000) === 0) samples.push({ atMs: nowMs, service: new Map(service) })
  }
  return { samples, service, admissions }
}
