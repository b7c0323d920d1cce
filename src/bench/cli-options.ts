import { type Command, InvalidArgumentError, Option } from 'commander'
import type { ClientMaxTokens } from './client.js'
import type { ConversationSampling, StopRule } from './closed-loop.js'
import { CONVERSATION_SAMPLINGS, STOP_RULES } from './closed-loop.js'
import { workloadFormats } from './load-workload.js'
import type { WorkloadOptions } from './prepare-workload.js'
import { DEFAULT_NUM_USERS, DEFAULT_USER_ZIPF_ALPHA } from './prepare-workload.js'
import type { BenchSummary } from './results.js'
import type { On429 } from './runner.js'
import { DEFAULT_MAX_RETRIES, ON_429_CHOICES } from './runner.js'
import type { RequestRecord } from './runner.js'
import type { RunWorkloadOptions, WorkloadRunResult } from './run-workload.js'
import type { UserSampleFigures } from './workload.js'

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

/** `--user-sample-ratio`: a share of the users, in (0, 1]. */
const ratio = (value: string): number => {
  const n = Number(value)
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('must be a number in (0, 1]')
  return n
}

/** `--client-max-tokens exact|none|N`. */
export function parseClientMaxTokens(value: string): ClientMaxTokens {
  if (value === 'exact' || value === 'none') return value
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be exact, none or an integer > 0')
  return n
}

/** `--header K:V` (or `K=V`, as vLLM's multi-turn bench accepts), repeatable. */
export function collectHeader(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = [value.indexOf(':'), value.indexOf('=')].filter((i) => i > 0).sort((a, b) => a - b)[0]
  const name = at !== undefined ? value.slice(0, at).trim() : ''
  if (at === undefined || name === '')
    throw new InvalidArgumentError('must be "Header-Name: value" or "Header-Name=value"')
  return { ...previous, [name]: value.slice(at + 1).trim() }
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
    .option('--num-prompts <n>', "vllm bench serve's name for --max-num-requests", positiveInteger('--num-prompts'))
    .option(
      '--user-sample-ratio <r>',
      "keep this share of the users, each with all its requests (seed 000's user sampling; arrival times kept)",
      ratio,
    )
    .option('--user-sample-seed <n>', 'seed of the user sample (default: --seed)', integer)
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

/** The run flags `bench` and `bench compare` share; the default of `--client-max-tokens` is each command's. */
export function addRunOptions(command: Command, clientMaxTokensDefault: ClientMaxTokens): Command {
  return command
    .option('--model <name>', 'model to request (default: the first of /v1/models)')
    .option('--num-clients <n>', 'closed loop: clients sending one request at a time', positiveInteger('--num-clients'))
    .option(
      '--max-active-conversations <n>',
      'closed loop: conversations open at once',
      positiveInteger('--max-active-conversations'),
    )
    .addOption(
      new Option(
        '--stop-rule <rule>',
        "closed loop: when the run ends (all: every conversation to its end; vllm: vLLM's early stop)",
      )
        .choices(STOP_RULES)
        .default('all'),
    )
    .addOption(
      new Option('--conversation-sampling <how>', 'closed loop: which open conversation a client sends next (as vLLM)')
        .choices(CONVERSATION_SAMPLINGS)
        .default('round_robin'),
    )
    .option(
      '--warmup-step',
      "closed loop: first send every conversation's first turn and leave it out of the figures (as vLLM)",
      false,
    )
    .option(
      '--max-concurrency <n>',
      'at most this many requests in flight (as vllm bench serve)',
      positiveInteger('--max-concurrency'),
    )
    .option(
      '--client-max-tokens <mode>',
      'how clients set max_tokens: exact (= min_tokens = the true length, ignore_eos), none, or a number; with none or a number the true length goes to the emulator as vllm_xargs.kvgate_sim_output_tokens',
      parseClientMaxTokens,
      clientMaxTokensDefault,
    )
    .addOption(
      new Option(
        '--on-429 <policy>',
        "what a client does with a 429: drop it, retry after its retry-after, or vLLM's 1/2/4 s backoff",
      )
        .choices(ON_429_CHOICES)
        .default('drop'),
    )
    .option('--retry-429', 'the same as --on-429 retry-after', false)
    .option(
      '--max-retries <n>',
      'retries per request with --on-429 retry-after or vllm-backoff',
      positiveInteger('--max-retries'),
      DEFAULT_MAX_RETRIES,
    )
    .option('--slo <spec>', 'goodput SLOs, e.g. ttft:500,tpot:50,e2el:5000 (ms)')
    .option('--goodput <slo...>', "vllm bench serve's spelling of --slo: ttft:MS tpot:MS e2el:MS")
    .option('--api-key <key>', 'send Authorization: Bearer KEY')
    .option('--header <K:V>', 'an extra request header (repeatable)', collectHeader)
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
  numPrompts?: number
  userSampleRatio?: number
  userSampleSeed?: number
  numUsers: number
  userZipfAlpha: number
  skipMalformed: boolean
  model?: string
  numClients?: number
  maxActiveConversations?: number
  stopRule: StopRule
  conversationSampling: ConversationSampling
  warmupStep: boolean
  maxConcurrency?: number
  clientMaxTokens: ClientMaxTokens
  on429: On429
  retry429: boolean
  maxRetries: number
  slo?: string
  goodput?: string[]
  apiKey?: string
  header?: Record<string, string>
  userHeader: string
  requestTimeout: number
}

/** `--max-num-requests`, or its vLLM spelling `--num-prompts`. */
const requestCap = (flags: CommonFlags): number | undefined => flags.maxNumRequests ?? flags.numPrompts

/** `--slo`, or `--goodput`'s words. */
export function sloSpec(flags: Pick<CommonFlags, 'slo' | 'goodput'>): string | undefined {
  return flags.slo ?? flags.goodput?.join(' ')
}

export function workloadOptionsFrom(flags: CommonFlags, inputFile: string, closedLoop: boolean): WorkloadOptions {
  const cap = requestCap(flags)
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
    ...(cap !== undefined ? { maxNumRequests: cap } : {}),
    ...(flags.userSampleRatio !== undefined ? { userSampleRatio: flags.userSampleRatio } : {}),
    ...(flags.userSampleSeed !== undefined ? { userSampleSeed: flags.userSampleSeed } : {}),
  }
}

/** What the run flags set; the caller adds the server, clock, counter, seed and progress callbacks. */
export type RunFlagOptions = Omit<RunWorkloadOptions, 'baseUrl' | 'clock' | 'counter' | 'seed' | 'onRecord' | 'onTotal'>

/** `--api-key` and `--header`, as request headers. */
export function requestHeaders(flags: Pick<CommonFlags, 'apiKey' | 'header'>): Record<string, string> {
  return { ...flags.header, ...(flags.apiKey !== undefined ? { authorization: `Bearer ${flags.apiKey}` } : {}) }
}

export function runOptionsFrom(flags: CommonFlags): RunFlagOptions {
  const cap = requestCap(flags)
  const headers = requestHeaders(flags)
  return {
    userHeader: flags.userHeader,
    on429: flags.retry429 && flags.on429 === 'drop' ? 'retry-after' : flags.on429,
    maxRetries: flags.maxRetries,
    requestTimeoutMs: flags.requestTimeout * 1000,
    clientMaxTokens: flags.clientMaxTokens,
    stopRule: flags.stopRule,
    conversationSampling: flags.conversationSampling,
    warmupStep: flags.warmupStep,
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    ...(flags.maxConcurrency !== undefined ? { maxConcurrency: flags.maxConcurrency } : {}),
    ...(flags.model !== undefined ? { model: flags.model } : {}),
    ...(flags.numClients !== undefined ? { numClients: flags.numClients } : {}),
    ...(flags.maxActiveConversations !== undefined ? { maxActiveConversations: flags.maxActiveConversations } : {}),
    // --request-rate paces each client only in closed loop; open loop it re-times the trace (workloadOptionsFrom).
    ...(flags.numClients !== undefined && flags.requestRate !== undefined
      ? { clientRequestRate: flags.requestRate }
      : {}),
    ...(flags.duration !== undefined ? { durationMs: flags.duration * 1000 } : {}),
    ...(cap !== undefined ? { maxNumRequests: cap } : {}),
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
    ...(run.unfinishedConversations !== undefined ? { unfinished_conversations: run.unfinishedConversations } : {}),
    ...(run.warmup !== undefined ? { warmup: run.warmup } : {}),
    summary: { ...summary, users: undefined },
    users: summary.users,
    requests: run.records,
  }
}

/**
 * The figures of a run where most requests failed describe nothing: such a run says so (with the first error's
 * text, which is usually the whole story: a refused connection, a 401) and the command exits non-zero. 429s are
 * admission doing its job, not failures.
 */
export function failureLine(
  summary: Pick<BenchSummary, 'requests' | 'failed'>,
  records: readonly RequestRecord[],
): string | undefined {
  if (summary.requests === 0 || summary.failed * 2 <= summary.requests) return undefined
  const first = records.find((r) => r.outcome === 'failed')
  const what =
    first === undefined
      ? 'unknown'
      : first.status > 0
        ? `HTTP ${first.status}: ${first.error ?? ''}`
        : (first.error ?? '')
  return `${summary.failed} of ${summary.requests} requests failed; first error: ${what}`
}

/** What `--user-sample-ratio` kept, in one line. */
export function userSampleLine(sample: UserSampleFigures, kind: 'trace' | 'conversations'): string {
  const unit = kind === 'trace' ? 'requests' : 'conversations'
  const rate = (value: number | undefined) => (value !== undefined ? `${value.toFixed(3)} req/s` : 'n/a')
  const rates =
    kind === 'trace' ? `; arrival rate ${rate(sample.arrivalRate)} (all users: ${rate(sample.arrivalRateBefore)})` : ''
  return `user_sample: ${sample.usersKept} of ${sample.users} users (ratio ${sample.ratio}, seed ${sample.seed}), ${sample.requestsKept} of ${sample.requests} ${unit}${rates}`
}
