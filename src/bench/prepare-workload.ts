import type { Random } from '../core/index.js'
import { createSeededRandom } from '../core/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { scheduleTrace, zipfRankSampler } from './arrivals.js'
import { loadWorkloadFile } from './load-workload.js'
import { seedFor } from './prompts.js'
import type { Workload } from './workload.js'

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
    counter,
  })
  if (workload.kind === 'trace') {
    const requests = scheduleTrace(workload.requests, {
      ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
      ...(options.requestRate !== undefined ? { requestRate: options.requestRate } : {}),
      ...(options.burstiness !== undefined ? { burstiness: options.burstiness } : {}),
      ...(options.durationSec !== undefined ? { durationSec: options.durationSec } : {}),
      ...(options.maxNumRequests !== undefined ? { maxNumRequests: options.maxNumRequests } : {}),
      zipfUsers: { numUsers: options.numUsers, alpha: options.userZipfAlpha },
      random: stream('schedule'),
    })
    return { ...workload, requests }
  }
  const draw = zipfRankSampler(options.numUsers, options.userZipfAlpha, stream('users'))
  const conversations = workload.conversations.map((c) => (c.user !== undefined ? c : { ...c, user: `user-${draw()}` }))
  return { ...workload, conversations }
}
