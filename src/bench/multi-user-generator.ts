import type { Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import { gammaArrivalsMs, zipfRankSampler } from './arrivals.js'
import { createDistribution } from './distributions.js'
import type { TraceRequest } from './workload.js'

/**
 * The built-in multi-user workload, so nothing needs a download: conversations start as a gamma process
 * (bursty when `burstiness` < 1), each belongs to a user drawn by Zipf popularity, has a number of rounds,
 * and each later round arrives a think time after the previous one. Lengths are distributions in vLLM's
 * JSON form. The result is an open-loop trace in the shape of seed 000's (user, time, new-turn length,
 * answer length, round).
 *
 * `{"filetype": "kvgate_multi_user", "duration_sec": 20, "num_users": 8, "user_zipf_alpha": 1.2,
 *   "conversation_rate": 2, "burstiness": 0.25, "num_rounds": {…}, "think_time_sec": {…},
 *   "input_num_tokens": {…}, "output_num_tokens": {…}}`
 */
export interface MultiUserSpec {
  durationSec: number
  numUsers: number
  userZipfAlpha: number
  /** New conversations per second, on average. */
  conversationRate: number
  burstiness: number
}

const DEFAULTS = {
  num_users: 8,
  user_zipf_alpha: 1.2,
  conversation_rate: 2,
  burstiness: 0.5,
  num_rounds: { distribution: 'uniform', min: 1, max: 4 },
  // Float bounds make uniform draw floats (seconds), as numpy's does; lognormal would round to whole seconds.
  think_time_sec: { distribution: 'uniform', min: 0.5, max: 3.0 },
  input_num_tokens: { distribution: 'lognormal', average: 200, max: 1500 },
  output_num_tokens: { distribution: 'lognormal', average: 100, max: 600 },
} as const

export function generateMultiUserTrace(spec: Record<string, unknown>, random: Random, source: string): TraceRequest[] {
  const number = (name: keyof typeof DEFAULTS | 'duration_sec'): number => {
    const value = spec[name] ?? (DEFAULTS as Record<string, unknown>)[name]
    if (typeof value !== 'number' || !(value > 0))
      throw errors.invalidWorkload([source, `${name} must be a number > 0`])
    return value
  }
  const durationSec = number('duration_sec')
  const numUsers = Math.round(number('num_users'))
  const alpha = number('user_zipf_alpha')
  const rate = number('conversation_rate')
  const burstiness = number('burstiness')
  const dist = (name: 'num_rounds' | 'think_time_sec' | 'input_num_tokens' | 'output_num_tokens') =>
    createDistribution(spec[name] ?? DEFAULTS[name], random, `${source}: ${name}`)
  const rounds = dist('num_rounds')
  const think = dist('think_time_sec')
  const inputs = dist('input_num_tokens')
  const outputs = dist('output_num_tokens')
  const drawUser = zipfRankSampler(numUsers, alpha, random)

  // Enough conversation starts to cover the duration; the ones past it are dropped.
  const expected = Math.ceil(durationSec * rate * 3 + 10)
  const starts = gammaArrivalsMs(expected, rate, burstiness, random).filter((ms) => ms <= durationSec * 1000)
  const requests: TraceRequest[] = []
  starts.forEach((startMs, c) => {
    const user = `user-${drawUser()}`
    const n = Math.max(1, Math.round(rounds.sample(1)[0] ?? 1))
    const ins = inputs.sample(n)
    const outs = outputs.sample(n)
    const gaps = think.sample(n)
    let t = startMs
    for (let r = 0; r < n; r++) {
      if (r > 0) t += Math.max(0, gaps[r] ?? 0) * 1000
      if (t > durationSec * 1000) break
      requests.push({
        arrivalMs: t,
        user,
        inputTokens: Math.max(2, Math.round(ins[r] ?? 2)),
        outputTokens: Math.max(1, Math.round(outs[r] ?? 1)),
        conversationId: `conv-${c}`,
        round: r,
      })
    }
  })
  return requests.sort((a, b) => a.arrivalMs - b.arrivalMs)
}
