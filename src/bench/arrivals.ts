import type { Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import { sampleGamma, sampleZipf } from './distributions.js'
import { arrivalRate, sampleTraceUsers } from './user-sampling.js'
import type { TraceRequest, UserSampleFigures } from './workload.js'

/**
 * Arrival-time transformations applied to a trace before it is replayed. All are pure functions of the
 * trace and a seeded `Random`, so one seed gives one schedule.
 */

/**
 * `vllm bench serve`'s arrivals: gaps drawn from gamma(shape = burstiness, scale = 1/(rate·burstiness)),
 * mean 1/rate; burstiness 1 is Poisson, below 1 burstier, above 1 more regular.
 */
export function gammaArrivalsMs(count: number, requestsPerSec: number, burstiness: number, random: Random): number[] {
  if (!(requestsPerSec > 0)) throw errors.invalidWorkload(['--request-rate', `must be > 0, got ${requestsPerSec}`])
  if (!(burstiness > 0)) throw errors.invalidWorkload(['--burstiness', `must be > 0, got ${burstiness}`])
  const scaleSec = 1 / (requestsPerSec * burstiness)
  const out: number[] = []
  let t = 0
  for (let i = 0; i < count; i++) {
    out.push(t * 1000)
    t += sampleGamma(random, burstiness, scaleSec)
  }
  return out
}

export interface ScheduleOptions {
  /** Multiply every arrival time (`0.01` plays `Timestamp/100`). */
  timeScale?: number
  /** Replace the trace's arrivals by a fixed-rate gamma process (requests per second). */
  requestRate?: number
  burstiness?: number
  /** Keep only requests arriving within this many seconds (after scaling). */
  durationSec?: number
  maxNumRequests?: number
  /** Label requests that have no user with Zipf(alpha) ranks among `numUsers` users. */
  zipfUsers?: { numUsers: number; alpha: number }
  /** Keep this share of the users (after labelling), each with all its requests: seed 000's user sampling. */
  userSample?: { ratio: number; seed: number; random: Random }
  random: Random
}

/**
 * The trace as it will be replayed: re-timed (fixed rate or scaled), cut to the duration and request cap,
 * and labelled with users where the trace has none. Conversation rounds keep their order under re-timing
 * because arrivals are re-assigned in trace order.
 */
export function scheduleTrace(requests: readonly TraceRequest[], options: ScheduleOptions): TraceRequest[] {
  return scheduleTraceWithSample(requests, options).requests
}

/** `scheduleTrace`, also returning what user sampling kept. */
export function scheduleTraceWithSample(
  requests: readonly TraceRequest[],
  options: ScheduleOptions,
): { requests: TraceRequest[]; userSample?: UserSampleFigures } {
  let out = requests.map((r) => ({ ...r }))
  if (options.requestRate !== undefined) {
    const times = gammaArrivalsMs(out.length, options.requestRate, options.burstiness ?? 1, options.random)
    out.forEach((r, i) => {
      r.arrivalMs = times[i] ?? 0
    })
  } else if (options.timeScale !== undefined && options.timeScale !== 1) {
    if (!(options.timeScale > 0))
      throw errors.invalidWorkload(['--time-scale', `must be > 0, got ${options.timeScale}`])
    for (const r of out) r.arrivalMs *= options.timeScale
  }
  let userSample: UserSampleFigures | undefined
  if (options.userSample !== undefined) {
    // Users are sampled over the whole trace, so they are labelled first. Labels are drawn in trace order, so
    // the requests kept by a later cut get the labels they would have had anyway.
    if (options.zipfUsers !== undefined)
      labelUsers(out, options.zipfUsers.numUsers, options.zipfUsers.alpha, options.random)
    const sampled = sampleTraceUsers(out, options.userSample.ratio, options.userSample.seed, options.userSample.random)
    out = sampled.requests
    userSample = sampled.figures
  }
  if (options.durationSec !== undefined) out = out.filter((r) => r.arrivalMs <= (options.durationSec as number) * 1000)
  if (options.maxNumRequests !== undefined) out = out.slice(0, options.maxNumRequests)
  if (options.zipfUsers !== undefined)
    labelUsers(out, options.zipfUsers.numUsers, options.zipfUsers.alpha, options.random)
  if (userSample !== undefined) {
    const rate = arrivalRate(out)
    userSample = { ...userSample, requestsKept: out.length, ...(rate !== undefined ? { arrivalRate: rate } : {}) }
  }
  return userSample !== undefined ? { requests: out, userSample } : { requests: out }
}

/**
 * BurstGPT's user analysis suggests Zipf popularity: user `user-k` (k = 1 most active) is drawn with
 * probability ∝ k^−alpha among `numUsers`. Rounds of one conversation stay with one user.
 */
export function labelUsers(requests: TraceRequest[], numUsers: number, alpha: number, random: Random): void {
  const draw = zipfRankSampler(numUsers, alpha, random)
  const byConversation = new Map<string, string>()
  for (const request of requests) {
    if (request.user !== undefined) continue
    if (request.conversationId !== undefined) {
      let user = byConversation.get(request.conversationId)
      if (user === undefined) {
        user = `user-${draw()}`
        byConversation.set(request.conversationId, user)
      }
      request.user = user
    } else {
      request.user = `user-${draw()}`
    }
  }
}

/** Draw ranks 1..n with P(k) ∝ k^−alpha (finite, so any alpha ≥ 0 works, unlike numpy's zipf). */
export function zipfRankSampler(n: number, alpha: number, random: Random): () => number {
  if (!(n >= 1)) throw errors.invalidWorkload(['--num-users', `must be ≥ 1, got ${n}`])
  const cumulative: number[] = []
  let total = 0
  for (let k = 1; k <= n; k++) {
    total += k ** -alpha
    cumulative.push(total)
  }
  return () => {
    const u = random.next() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((cumulative[mid] as number) > u) hi = mid
      else lo = mid + 1
    }
    return lo + 1
  }
}

export { sampleZipf }
