import { request } from 'undici'
import type { Clock } from '../core/index.js'
import { createScaledClock, createSystemClock } from '../core/index.js'
import { DEFAULT_OUTPUT_HINT_HEADER, parseConfig } from '../config/index.js'
import { createGateway } from '../gateway/index.js'
import type { Gateway } from '../gateway/index.js'
import { policyNames } from '../policies/index.js'
import type { SimHandle, SimOptions } from '../sim/index.js'
import { startSim } from '../sim/index.js'
import type { TokenCounter } from '../tokens/index.js'
import type { BenchSummary, Slo } from './results.js'
import { summarize } from './results.js'
import type { RunWorkloadOptions, WorkloadRunResult } from './run-workload.js'
import { runWorkload } from './run-workload.js'
import type { Workload } from './workload.js'

/**
 * `kvgate bench compare`: one workload, run directly against a backend and then through kvgate with each
 * policy, every setup on a fresh emulator (unless a backend URL is given) so no run inherits another's
 * queue or prefix cache. While a setup runs, the emulator's and kvgate's /metrics are sampled for the
 * report's KV-usage and queue-depth charts.
 */
export const DIRECT_SETUP = 'direct'
/**
 * kvgate with the first policy named, whose clients send each request's true output length in the
 * `x-kvgate-output-tokens` header and whose users the gateway trusts with it: admission with perfect
 * knowledge of the lengths, the reference the predicted setups are measured against.
 */
export const ORACLE_SETUP = 'oracle'

export interface MetricsSample {
  /** ms after the setup's run started, on the run's (possibly scaled) clock. */
  tMs: number
  kvUsage?: number
  backendWaiting?: number
  backendRunning?: number
  preemptions?: number
  kvgateQueueDepth?: number
  kvgateReservedTokens?: number
  /** Output kvgate reserved that no request has generated yet (KV idle now, held for later). */
  kvgateUngeneratedTokens?: number
}

export interface SetupResult {
  name: string
  /** The kvgate policy it ran (the oracle's is the first policy named); unset for direct. */
  policy?: string
  run: WorkloadRunResult
  summary: BenchSummary
  samples: MetricsSample[]
  /** Preemptions the backend counted during this setup. */
  preemptions: number
  maxKvUsage: number
  /**
   * Goodput as a share of `direct`'s: requests meeting every SLO here over those meeting it in `direct` (the
   * same requests are sent to every setup, so it is also the ratio of `goodput_ratio`s). The floor kvgate must
   * keep: below 1, putting kvgate in front lost goodput. Unset for `direct` and when direct had none.
   */
  goodputVsDirect?: number
  /** Goodput as a share of the `oracle` setup's, when one ran: how far prediction is from perfect knowledge. */
  goodputVsOracle?: number
  /** The gateway's predictor at the end of the run: share of answers within the prediction, and unused share. */
  predictorCoverage?: number
  overReservation?: number
  /** Wall-clock seconds the setup took (its emulator and gateway start included). */
  wallSec?: number
}

export interface CompareOptions {
  workload: Workload
  counter: TokenCounter
  seed: number
  policies?: readonly string[]
  /** Add the `oracle` setup after the policies (see ORACLE_SETUP). */
  oracle?: boolean
  /** An external backend; without it, a fresh emulator per setup. */
  backendUrl?: string
  sim?: SimOptions
  /** The emulator runs this many times faster; the replay and figures use the same scaled clock. */
  speed?: number
  /** How long a request may wait in kvgate's queue before a 429 (the gateway's defaultDeadlineMs). */
  deadlineMs?: number
  /** Extra gateway config (YAML shape) merged over the defaults compare builds. */
  gatewayConfig?: Record<string, unknown>
  slo: Slo
  run: Omit<RunWorkloadOptions, 'baseUrl' | 'clock' | 'counter' | 'seed'>
  sampleIntervalMs?: number
  onSetupStart?: (name: string) => void
  onSetupDone?: (result: SetupResult) => void
}

/** 5 s (emulated) in kvgate's queue before a 429: an interactive user's patience, not the 30 s server default. */
export const DEFAULT_COMPARE_DEADLINE_MS = 5_000
/** 250 ms (emulated) between two samples of /metrics for the charts. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 250

/** Sum of each metric's samples over labels, from Prometheus text (only the simple lines compare reads). */
export function parsePrometheusTotals(text: string): Map<string, number> {
  const totals = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue
    const match = /^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line)
    if (match === null) continue
    const value = Number(match[2])
    if (!Number.isFinite(value)) continue
    totals.set(match[1] as string, (totals.get(match[1] as string) ?? 0) + value)
  }
  return totals
}

async function scrape(url: string): Promise<Map<string, number> | undefined> {
  try {
    const res = await request(`${url}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 })
    if (res.statusCode !== 200) {
      await res.body.dump()
      return undefined
    }
    return parsePrometheusTotals(await res.body.text())
  } catch {
    return undefined
  }
}

function startSampler(clock: Clock, intervalMs: number, backendUrl: string, gatewayUrl: string | undefined) {
  const origin = clock.now()
  const samples: MetricsSample[] = []
  let busy = false
  const take = async (): Promise<void> => {
    if (busy) return // a slow scrape skips a tick rather than piling up
    busy = true
    const tMs = clock.now() - origin
    const [backend, gateway] = await Promise.all([scrape(backendUrl), gatewayUrl ? scrape(gatewayUrl) : undefined])
    const sample: MetricsSample = { tMs }
    const kv = backend?.get('vllm:kv_cache_usage_perc') ?? backend?.get('vllm:gpu_cache_usage_perc')
    if (kv !== undefined) sample.kvUsage = kv
    const waiting = backend?.get('vllm:num_requests_waiting')
    if (waiting !== undefined) sample.backendWaiting = waiting
    const running = backend?.get('vllm:num_requests_running')
    if (running !== undefined) sample.backendRunning = running
    const preemptions = backend?.get('vllm:num_preemptions_total')
    if (preemptions !== undefined) sample.preemptions = preemptions
    const depth = gateway?.get('kvgate_queue_depth')
    if (depth !== undefined) sample.kvgateQueueDepth = depth
    const reserved = gateway?.get('kvgate_ledger_reserved_tokens')
    if (reserved !== undefined) sample.kvgateReservedTokens = reserved
    const ungenerated = gateway?.get('kvgate_ledger_ungenerated_tokens')
    if (ungenerated !== undefined) sample.kvgateUngeneratedTokens = ungenerated
    samples.push(sample)
    busy = false
  }
  void take()
  const timer = clock.setInterval(() => void take(), intervalMs)
  return {
    samples,
    async stop(): Promise<void> {
      clock.clearInterval(timer)
      while (busy) await new Promise((resolve) => setTimeout(resolve, 5))
      await take()
    },
  }
}

function workloadUsers(workload: Workload): string[] {
  const users = new Set<string>()
  if (workload.kind === 'trace') for (const r of workload.requests) users.add(r.user ?? 'anonymous')
  else for (const c of workload.conversations) users.add(c.user ?? 'anonymous')
  return [...users]
}

/** A name kvgate accepts as a configured user (the others run under the default user's settings). */
const USER_NAME = /^[A-Za-z0-9_.@:-]{1,64}$/

/** The header the oracle's clients send the true length in: whatever the gateway reads. */
function outputHintHeaderOf(gateway: Gateway | undefined): string {
  return gateway?.config().admission.outputHintHeader ?? DEFAULT_OUTPUT_HINT_HEADER
}

/** The gateway config compare runs with: the backend, the policy, the deadline, one entry per user. */
export function compareGatewayConfig(
  backendUrl: string,
  policy: string,
  users: readonly string[],
  deadlineMs: number,
  extra: Record<string, unknown> = {},
  speed = 1,
): ReturnType<typeof parseConfig> {
  // The emulator, gateway and clients share one event loop here, and at speed S a real stall of t ms reads
  // as S·t emulated ms: keep a second of real time before a poll is late or the backend's metrics stale, or a
  // busy machine turns into 503s that say nothing about admission.
  const pollSlackMs = Math.max(1_000, Math.round(1_000 * speed))
  const base: Record<string, unknown> = {
    server: { host: '127.0.0.1', port: 0 },
    backends: [{ url: backendUrl, name: 'backend' }],
    metricsPoll: { timeoutMs: pollSlackMs, staleAfterMs: pollSlackMs },
    // The backend's /health every 2 s of real time, with the same slack as a poll.
    healthCheck: { intervalMs: Math.max(2_000, Math.round(2_000 * speed)), timeoutMs: pollSlackMs },
    admission: { defaultDeadlineMs: deadlineMs, maxDeadlineMs: Math.max(deadlineMs, 120_000) },
    policy: { name: policy, options: {} },
    // Configured users get their own metric labels and weights (1 each: the fairness figures assume equal shares).
    users: users.filter((u) => USER_NAME.test(u)).map((name) => ({ name, weight: 1 })),
    telemetry: { maxUserLabels: Math.max(100, users.length), logLevel: 'warn' },
  }
  const merged: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(extra)) {
    const current = merged[key]
    merged[key] =
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      current !== null &&
      typeof current === 'object' &&
      !Array.isArray(current)
        ? { ...(current as object), ...(value as object) }
        : value
  }
  return parseConfig(merged)
}

/** One setup to run: direct (no policy), a policy, or the oracle (a policy told every length). */
interface Setup {
  readonly name: string
  readonly policy?: string
  readonly oracle?: boolean
}

/** The setups of a compare run, in the order they run and print. */
export function compareSetups(policies: readonly string[], oracle: boolean): Setup[] {
  const first = policies[0]
  return [
    { name: DIRECT_SETUP },
    ...policies.map((policy) => ({ name: policy, policy })),
    ...(oracle && first !== undefined ? [{ name: ORACLE_SETUP, policy: first, oracle: true }] : []),
  ]
}

/** The oracle's gateway trusts every user's output hint (compare's users and anyone else). */
function oracleConfig(extra: Record<string, unknown>, users: readonly string[]): Record<string, unknown> {
  const listed = Array.isArray(extra['users'])
    ? (extra['users'] as Record<string, unknown>[])
    : users.filter((u) => USER_NAME.test(u)).map((name) => ({ name, weight: 1 }))
  const defaultUser = (extra['defaultUser'] as Record<string, unknown> | undefined) ?? {}
  return {
    ...extra,
    users: listed.map((u) => ({ ...u, trustOutputHint: true })),
    defaultUser: { ...defaultUser, trustOutputHint: true },
  }
}

export async function runCompare(options: CompareOptions): Promise<SetupResult[]> {
  const policies = options.policies ?? policyNames()
  const setups = compareSetups(policies, options.oracle === true)
  const speed = options.speed ?? options.sim?.speed ?? 1
  const users = workloadUsers(options.workload)
  const results: SetupResult[] = []
  for (const setup of setups) {
    const name = setup.name
    options.onSetupStart?.(name)
    const wallStart = Date.now()
    // One scaled clock per setup, shared by the emulator's pace, the gateway and the replay.
    const clock = speed === 1 ? createSystemClock() : createScaledClock(speed)
    let sim: SimHandle | undefined
    let gateway: Gateway | undefined
    try {
      if (options.backendUrl === undefined) {
        sim = await startSim({ logger: false, seed: options.seed, ...options.sim, speed, port: 0, host: '127.0.0.1' })
      }
      const backendUrl = options.backendUrl ?? (sim as SimHandle).url
      let targetUrl = backendUrl
      if (setup.policy !== undefined) {
        const extra = options.gatewayConfig ?? {}
        const config = compareGatewayConfig(
          backendUrl,
          setup.policy,
          users,
          options.deadlineMs ?? DEFAULT_COMPARE_DEADLINE_MS,
          setup.oracle === true ? oracleConfig(extra, users) : extra,
          speed,
        )
        gateway = await createGateway({ config, clock, logger: false })
        targetUrl = await gateway.listen({ port: 0, host: '127.0.0.1' })
        await waitForGatewayReady(targetUrl)
      }
      const sampler = startSampler(
        clock,
        options.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS,
        backendUrl,
        // kvgate's metrics are on its admin listener.
        gateway ? gateway.adminUrl() : undefined,
      )
      const run = await runWorkload(options.workload, {
        ...options.run,
        ...(setup.oracle === true ? { outputHintHeader: outputHintHeaderOf(gateway) } : {}),
        baseUrl: targetUrl,
        clock,
        counter: options.counter,
        seed: options.seed,
      })
      await sampler.stop()
      const gatewayTotals = gateway === undefined ? undefined : await scrape(gateway.adminUrl())
      const preemptionSamples = sampler.samples.map((s) => s.preemptions).filter((p): p is number => p !== undefined)
      const result: SetupResult = {
        name,
        ...(setup.policy === undefined ? {} : { policy: setup.policy }),
        run,
        summary: summarize(run, options.slo),
        samples: sampler.samples,
        preemptions: preemptionSamples.length > 0 ? Math.max(...preemptionSamples) - Math.min(...preemptionSamples) : 0,
        maxKvUsage: Math.max(0, ...sampler.samples.map((s) => s.kvUsage ?? 0)),
        wallSec: (Date.now() - wallStart) / 1000,
      }
      const coverage = gatewayTotals?.get('kvgate_predictor_coverage_ratio')
      if (coverage !== undefined) result.predictorCoverage = coverage
      const over = gatewayTotals?.get('kvgate_predictor_over_reservation_ratio')
      if (over !== undefined) result.overReservation = over
      const direct = results.find((r) => r.name === DIRECT_SETUP)
      if (name !== DIRECT_SETUP && direct !== undefined) {
        const ratio = goodputVsDirect(result, direct)
        if (ratio !== undefined) result.goodputVsDirect = ratio
      }
      results.push(result)
      options.onSetupDone?.(result)
    } finally {
      await gateway?.close()
      await sim?.close()
    }
  }
  const oracle = results.find((r) => r.name === ORACLE_SETUP)
  if (oracle !== undefined) {
    for (const r of results) {
      if (r === oracle) continue
      const ratio = goodputRatioOf(r, oracle)
      if (ratio !== undefined) r.goodputVsOracle = ratio
    }
  }
  return results
}

/** Requests meeting every SLO in `setup` over those in `reference`; undefined when the reference had none. */
function goodputRatioOf(setup: SetupResult, reference: SetupResult): number | undefined {
  const good = (r: SetupResult) => r.summary.goodput_ratio * r.summary.requests
  return good(reference) > 0 ? good(setup) / good(reference) : undefined
}

/** Requests meeting every SLO in `setup` over those in `direct`; undefined when direct had none. */
export function goodputVsDirect(setup: SetupResult, direct: SetupResult): number | undefined {
  return goodputRatioOf(setup, direct)
}

/** The setups whose goodput fell below direct's. */
export function setupsBelowDirect(results: readonly SetupResult[]): SetupResult[] {
  return results.filter((r) => r.goodputVsDirect !== undefined && r.goodputVsDirect < 1)
}

/** kvgate answers 503 until its first metrics poll says the backend is usable; wait for that (≤ 10 s). */
async function waitForGatewayReady(url: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    try {
      const res = await request(`${url}/health`)
      await res.body.dump()
      if (res.statusCode === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
