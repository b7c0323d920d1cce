import type { Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import { naturalCompare } from './results.js'
import type { TraceRequest, UserSampleFigures } from './workload.js'

/**
 * Seed 000's way to vary the load of a real trace: "for different user arrival rates, conduct simple user
 * sampling and adjust sampling ratios on the workload". A random share of the users is kept, each with every one
 * of its requests (so conversations stay whole), and the arrival times are left as they were: the arrival rate
 * falls with the share of users instead of the trace being sped up or slowed down.
 */

/** `round(ratio · users)` users (at least one), drawn without replacement by a seeded partial shuffle. */
export function pickUsers(users: readonly string[], ratio: number, random: Random): Set<string> {
  if (!(ratio > 0 && ratio <= 1))
    throw errors.invalidWorkload(['--user-sample-ratio', `must be in (0, 1], got ${ratio}`])
  const pool = [...new Set(users)].sort(naturalCompare)
  const keep = Math.min(pool.length, Math.max(1, Math.round(ratio * pool.length)))
  for (let i = 0; i < keep; i++) {
    const j = i + Math.floor(random.next() * (pool.length - i))
    const swap = pool[i] as string
    pool[i] = pool[j] as string
    pool[j] = swap
  }
  return new Set(pool.slice(0, keep))
}

/** Requests per second of arrivals (first to last arrival), undefined for fewer than two requests. */
export function arrivalRate(requests: readonly TraceRequest[]): number | undefined {
  if (requests.length < 2) return undefined
  let first = Number.POSITIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  for (const r of requests) {
    first = Math.min(first, r.arrivalMs)
    last = Math.max(last, r.arrivalMs)
  }
  return last > first ? (requests.length - 1) / ((last - first) / 1000) : undefined
}

/**
 * Keep the sampled users' requests of a (labelled) trace, shifted so that the first kept request arrives at 0,
 * as every trace starts. Returns the kept requests and the figures the summary states.
 */
export function sampleTraceUsers(
  requests: readonly TraceRequest[],
  ratio: number,
  seed: number,
  random: Random,
): { requests: TraceRequest[]; figures: UserSampleFigures } {
  const users = requests.map((r) => r.user ?? 'anonymous')
  const kept = pickUsers(users, ratio, random)
  const out = requests.filter((r) => kept.has(r.user ?? 'anonymous')).map((r) => ({ ...r }))
  const origin = out.reduce((min, r) => Math.min(min, r.arrivalMs), Number.POSITIVE_INFINITY)
  if (Number.isFinite(origin)) for (const r of out) r.arrivalMs -= origin
  const before = arrivalRate(requests)
  return {
    requests: out,
    figures: {
      ratio,
      seed,
      users: new Set(users).size,
      usersKept: kept.size,
      requests: requests.length,
      requestsKept: out.length,
      ...(before !== undefined ? { arrivalRateBefore: before } : {}),
    },
  }
}
