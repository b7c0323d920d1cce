import cliProgress from 'cli-progress'
import { type Command, InvalidArgumentError, Option } from 'commander'
import { workloadFormats } from './load-workload.js'
import type { WorkloadOptions } from './prepare-workload.js'
import { DEFAULT_NUM_USERS, DEFAULT_USER_ZIPF_ALPHA } from './prepare-workload.js'
import type { BenchSummary } from './results.js'
import { DEFAULT_MAX_RETRIES } from './runner.js'
import type { RequestRecord } from './runner.js'
import type { RunWorkloadOptions, WorkloadRunResult } from './run-workload.js'

/** Flags, progress bar and JSON export shared by `bench`, `bench compare` and `bench analyze`. */
export const positiveNumber =
  (name: string) =>
  (value: string): number => {
    const n = Number(value)
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number > 0`)
    return n
  }
export const positiveInteger =
  (name: string) =>
  (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be an integer > 0`)
    return n
  }
const integer = (value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be an integer')
  return n
}

/** The workload flags `bench`, `bench compare` and `bench analyze` share. */
export function addWorkloadOptions(command: Command, inputRequired = true): Command {
  if (inputRequired) command.option('-i, --input-file <file>', 'trace, conversation JSON, or workload file')
  return command
    .addOption(new Option('--format <name>', 'input format').choices(workloadFormats()).default('auto'))
    .option('--seed <n>', 'seed for every random draw (prompts, arrivals, user labels)', integer, 0)
    .option('--time-scale <x>', 'multiply trace timestamps (0.01 plays Timestamp/100)', positiveNumber('--time-scale'))
    .option(
      '--request-rate <rps>',
      'traces: replace arrivals by a fixed-rate gamma process; conversations: per-client Poisson rate (as vLLM)',
      positiveNumber('--request-rate'),
    )
    .option(
      '--burstiness <b>',
      'gamma shape of --request-rate arrivals (1 = Poisson, < 1 burstier)',
      positiveNumber('--burstiness'),
    )
    .option('--duration <sec>', 'send only what arrives within this many seconds', positiveNumber('--duration'))
    .option('--max-num-requests <n>', 'send at most this many requests', positiveInteger('--max-num-requests'))
    .option(
      '--num-users <n>',
      'users for Zipf labels when the input has none',
      positiveInteger('--num-users'),
      DEFAULT_NUM_USERS,
    )
    .option(
      '--user-zipf-alpha <a>',
      'Zipf exponent of user popularity for synthesised labels',
      Number,
      DEFAULT_USER_ZIPF_ALPHA,
    )
    .option('--skip-malformed', 'skip malformed rows (counted and reported) instead of stopping at the first', false)
}

/** The run flags `bench` and `bench compare` share. */
export function addRunOptions(command: Command): Command {
  return command
    .option('--model <name>', 'model to request (default: the first of /v1/models)')
    .option('--num-clients <n>', 'closed loop: clients sending one request at a time', positiveInteger('--num-clients'))
    .option(
      '--max-active-conversations <n>',
      'closed loop: conversations open at once',
      positiveInteger('--max-active-conversations'),
    )
    .option('--retry-429', 'retry a 429 after its retry-after (otherwise it is counted and not retried)', false)
    .option(
      '--max-retries <n>',
      'retries per request with --retry-429',
      positiveInteger('--max-retries'),
      DEFAULT_MAX_RETRIES,
    )
    .option('--slo <spec>', 'goodput SLOs, e.g. ttft:500,tpot:50,e2el:5000 (ms)')
    .option('--user-header <name>', 'header that names the user', 'x-user-id')
    .option('--request-timeout <sec>', 'fail a request silent for this long', positiveNumber('--request-timeout'), 600)
}

export interface CommonFlags {
  inputFile?: string
  format: string
  seed: number
  timeScale?: number
  requestRate?: number
  burstiness?: number
  duration?: number
  maxNumRequests?: number
  numUsers: number
  userZipfAlpha: number
  skipMalformed: boolean
  model?: string
  numClients?: number
  maxActiveConversations?: number
  retry429: boolean
  maxRetries: number
  slo?: string
  userHeader: string
  requestTimeout: number
}

export function workloadOptionsFrom(flags: CommonFlags, inputFile: string, closedLoop: boolean): WorkloadOptions {
  return {
    inputFile,
    format: flags.format,
    seed: flags.seed,
    skipMalformed: flags.skipMalformed,
    numUsers: flags.numUsers,
    userZipfAlpha: flags.userZipfAlpha,
    ...(flags.timeScale !== undefined ? { timeScale: flags.timeScale } : {}),
    // In closed loop the rate paces each client rather than re-timing the trace.
    ...(flags.requestRate !== undefined && !closedLoop ? { requestRate: flags.requestRate } : {}),
    ...(flags.burstiness !== undefined ? { burstiness: flags.burstiness } : {}),
    ...(flags.duration !== undefined ? { durationSec: flags.duration } : {}),
    ...(flags.maxNumRequests !== undefined ? { maxNumRequests: flags.maxNumRequests } : {}),
  }
}

/** What the run flags set; the caller adds the server, clock, counter, seed and progress callbacks. */
export type RunFlagOptions = Omit<RunWorkloadOptions, 'baseUrl' | 'clock' | 'counter' | 'seed' | 'onRecord' | 'onTotal'>

export function runOptionsFrom(flags: CommonFlags): RunFlagOptions {
  return {
    userHeader: flags.userHeader,
    retry429: flags.retry429,
    maxRetries: flags.maxRetries,
    requestTimeoutMs: flags.requestTimeout * 1000,
    ...(flags.model !== undefined ? { model: flags.model } : {}),
    ...(flags.numClients !== undefined ? { numClients: flags.numClients } : {}),
    ...(flags.maxActiveConversations !== undefined ? { maxActiveConversations: flags.maxActiveConversations } : {}),
    // --request-rate paces each client only in closed loop; open loop it re-times the trace (workloadOptionsFrom).
    ...(flags.numClients !== undefined && flags.requestRate !== undefined
      ? { clientRequestRate: flags.requestRate }
      : {}),
    ...(flags.duration !== undefined ? { durationMs: flags.duration * 1000 } : {}),
    ...(flags.maxNumRequests !== undefined ? { maxNumRequests: flags.maxNumRequests } : {}),
  }
}

/** A progress bar on stderr when it is a terminal; nothing otherwise (CI logs stay clean). */
export function createProgress(label: string): {
  onTotal(n: number): void
  onRecord(r: RequestRecord): void
  stop(): void
} {
  if (!process.stderr.isTTY) return { onTotal() {}, onRecord() {}, stop() {} }
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} requests | 429s {rejected} | failed {failed}`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  )
  let rejected = 0
  let failed = 0
  let started = false
  return {
    onTotal(n) {
      bar.start(n, 0, { rejected, failed })
      started = true
    },
    onRecord(r) {
      if (r.outcome === 'rejected') rejected++
      if (r.outcome === 'failed') failed++
      if (started) bar.increment(1, { rejected, failed })
    },
    stop() {
      if (started) bar.stop()
    },
  }
}

/** The JSON export: every figure of the summary, per user, and per request. */
export function benchJson(run: WorkloadRunResult, summary: BenchSummary, extra: Record<string, unknown>): unknown {
  return {
    ...extra,
    mode: run.mode,
    model: run.model,
    started_at: new Date(run.startedAtWallMs).toISOString(),
    ...(run.abandonedConversations !== undefined ? { abandoned_conversations: run.abandonedConversations } : {}),
    summary: { ...summary, users: undefined },
    users: summary.users,
    requests: run.records,
  }
}
