import type { Random } from '../core/index.js'
import { createSeededRandom } from '../core/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { scheduleTraceWithSample, zipfRankSampler } from './arrivals.js'
import { loadWorkloadFile } from './load-workload.js'
import { seedFor } from './prompts.js'
import { pickUsers } from './user-sampling.js'
import type { UserSampleFigures, Workload } from './workload.js'

/** The workload options shared by `bench`, `bench compare` and `bench analyze`. */
export interface WorkloadOptions {
  inputFile: string
  format: string
  seed: number
  skipMalformed: boolean
  timeScale?: number
  requestRate?: number
  burstiness?: number
  durationSec?: number
  maxNumRequests?: number
  /** Users to draw Zipf labels from when the workload has none. */
  numUsers: number
  userZipfAlpha: number
  /** Keep this share of the users, each with all its requests (seed 000's user sampling). */
  userSampleRatio?: number
  /** Seed of the user draw; `seed` when not given. */
  userSampleSeed?: number
}

/** Defaults for synthesised user labels: 10 users, Zipf 1.2 (BurstGPT's users look Zipf-like). */
export const DEFAULT_NUM_USERS = 10
export const DEFAULT_USER_ZIPF_ALPHA = 1.2

/**
 * Read, re-time, cut and label a workload. Separate random streams per step keep, say, the user labels the
 * same whether or not `--request-rate` re-times the trace.
 */
export async function prepareWorkload(options: WorkloadOptions, counter: TokenCounter): Promise<Workload> {
  const stream = (name: string): Random => createSeededRandom(seedFor(options.seed, name))
  const workload = await loadWorkloadFile(options.inputFile, {
    format: options.format,
    onMalformed: options.skipMalformed ? 'skip' : 'error',
    random: stream('generate'),
    numpySeed: options.seed >>> 0,
    counter,
  })
  const sampleSeed = options.userSampleSeed ?? options.seed
  const userSample =
    options.userSampleRatio !== undefined
      ? {
          ratio: options.userSampleRatio,
          seed: sampleSeed,
          random: createSeededRandom(seedFor(sampleSeed, 'user-sample')),
        }
      : undefined
  if (workload.kind === 'trace') {
    const scheduled = scheduleTraceWithSample(workload.requests, {
      ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
      ...(options.requestRate !== undefined ? { requestRate: options.requestRate } : {}),
      ...(options.burstiness !== undefined ? { burstiness: options.burstiness } : {}),
      ...(options.durationSec !== undefined ? { durationSec: options.durationSec } : {}),
      ...(options.maxNumRequests !== undefined ? { maxNumRequests: options.maxNumRequests } : {}),
      zipfUsers: { numUsers: options.numUsers, alpha: options.userZipfAlpha },
      ...(userSample !== undefined ? { userSample } : {}),
      random: stream('schedule'),
    })
    return { ...workload, ...scheduled }
  }
  const draw = zipfRankSampler(options.numUsers, options.userZipfAlpha, stream('users'))
  let conversations = workload.conversations.map((c) => (c.user !== undefined ? c : { ...c, user: `user-${draw()}` }))
  if (userSample === undefined) return { ...workload, conversations }
  // Closed loop: whole users' conversations are kept; there are no arrival times to speak of.
  const users = conversations.map((c) => c.user ?? 'anonymous')
  const kept = pickUsers(users, userSample.ratio, userSample.random)
  const before = conversations.length
  conversations = conversations.filter((c) => kept.has(c.user ?? 'anonymous'))
  const figures: UserSampleFigures = {
    ratio: userSample.ratio,
    seed: userSample.seed,
    users: new Set(users).size,
    usersKept: kept.size,
    requests: before,
    requestsKept: conversations.length,
  }
  return { ...workload, conversations, userSample: figures }
}
