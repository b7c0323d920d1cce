import { request } from 'undici'
import { createScaledClock, createSystemClock } from '../core/index.js'
import { DEFAULT_OUTPUT_HINT_HEADER, parseConfig } from '../config/index.js'
import { createGateway } from '../gateway/index.js'
import type { Gateway } from '../gateway/index.js'
import { errors } from '../errors/index.js'
import { policyNames } from '../policies/index.js'
import type { SimHandle, SimOptions } from '../sim/index.js'
import { SIM_DEFAULTS, startSim } from '../sim/index.js'
import { fleetFigures, type MetricsSample, scrape, startSampler } from './compare-sampler.js'
import type { TokenCounter } from '../tokens/index.js'
import type { BenchSummary, Slo } from './results.js'
import { summarize } from './results.js'
import type { RunWorkloadOptions, WorkloadRunResult } from './run-workload.js'
import { runWorkload } from './run-workload.js'
import { startSpreadProxy, type SpreadProxy } from './spread-proxy.js'
import type { Workload } from './workload.js'

export { type MetricsSample, parsePrometheusTotals } from './compare-sampler.js'

/**
 * `kvgate bench compare`: one workload, run directly against a backend and then through kvgate with each
 * policy (and each routing, with `routings`), every setup on fresh emulators (unless a backend URL is given)
 * so no run inherits another's queue or prefix cache. With `backends: N` each setup runs N emulators: kvgate
 * in front of all of them, or, for `direct`, a plain round-robin balancer (spread-proxy.ts). While a setup
 * runs, the emulators' and kvgate's /metrics are sampled for the report's charts and the fleet figures.
 */
export const DIRECT_SETUP = 'direct'
/**
 * kvgate with the first policy named, whose clients send each request's true output length in the
 * `x-kvgate-output-tokens` header and whose users the gateway trusts with it: admission with perfect
 * knowledge of the lengths, the reference the predicted setups are measured against.
 */
export const ORACLE_SETUP = 'oracle'

export interface SetupResult {
  name: string
  /** The kvgate policy it ran (the oracle's is the first policy named); unset for direct. */
  policy?: string
  run: WorkloadRunResult
  summary: BenchSummary
  samples: MetricsSample[]
  /** Preemptions the backends counted during this setup. */
  preemptions: number
  /** The highest KV usage any backend reported. */
  maxKvUsage: number
  /** Emulators behind the setup. */
  backends: number
  /** The emulators' prefix-cache hits over queries (tokens) during the run; undefined without queries. */
  prefixCacheHitRate?: number
  /** max − min over backends of their mean KV usage during the run (0 with one backend). */
  kvBalance: number
  meanKvUsageByBackend: readonly number[]
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
  /** Routings of the kvgate setups: one setup per policy and routing, named `policy/routing`. */
  routings?: readonly string[]
  /** Emulators per setup (1 by default). */
  backends?: number
  /**
   * One more setup, the ideal-affinity reference: one emulator with `backends ×` the blocks (and as long a
   * context as the others), through kvgate with the first policy. Named `policy/single-Nx-blocks`.
   */
  referenceSingleBackend?: boolean
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

/** The gateway config compare runs with: the backends, the policy, the deadline, one entry per user. */
export function compareGatewayConfig(
  backendUrl: string | readonly string[],
  policy: string,
  users: readonly string[],
  deadlineMs: number,
  extra: Record<string, unknown> = {},
  speed = 1,
  routing?: string,
): ReturnType<typeof parseConfig> {
  // The emulator, gateway and clients share one event loop here, and at speed S a real stall of t ms reads
  // as S·t emulated ms: keep a second of real time before a poll is late or the backend's metrics stale, or a
  // busy machine turns into 503s that say nothing about admission.
  const pollSlackMs = Math.max(1_000, Math.round(1_000 * speed))
  const urls = typeof backendUrl === 'string' ? [backendUrl] : backendUrl
  const base: Record<string, unknown> = {
    server: { host: '127.0.0.1', port: 0 },
    backends: urls.map((url, i) => ({ url, name: urls.length === 1 ? 'backend' : `backend-${i}` })),
    metricsPoll: { timeoutMs: pollSlackMs, staleAfterMs: pollSlackMs },
    // The backend's /health every 2 s of real time, with the same slack as a poll.
    healthCheck: { intervalMs: Math.max(2_000, Math.round(2_000 * speed)), timeoutMs: pollSlackMs },
    admission: { defaultDeadlineMs: deadlineMs, maxDeadlineMs: Math.max(deadlineMs, 120_000) },
    policy: { name: policy, options: {} },
    ...(routing === undefined ? {} : { routing: { name: routing, options: {} } }),
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

/** One setup of a comparison: who answers (direct or kvgate with a policy and routing) and its emulators. */
export interface SetupPlan {
  readonly name: string
  /** undefined: direct. */
  readonly policy?: string
  readonly routing?: string
  /** The oracle: the policy told every request's true length (see ORACLE_SETUP). */
  readonly oracle?: boolean
  /** Emulators behind it. */
  readonly backends: number
  readonly sim: SimOptions
}

/** The setups of a comparison, in the order they run: direct, each policy × routing, the oracle, the reference. */
export function planSetups(
  options: Pick<CompareOptions, 'policies' | 'routings' | 'backends' | 'referenceSingleBackend' | 'sim' | 'oracle'>,
): SetupPlan[] {
  const n = options.backends ?? 1
  const sim = options.sim ?? {}
  const policies = options.policies ?? policyNames()
  const plans: SetupPlan[] = [{ name: DIRECT_SETUP, backends: n, sim }]
  for (const policy of policies) {
    if (options.routings === undefined) plans.push({ name: policy, policy, backends: n, sim })
    else
      for (const routing of options.routings)
        plans.push({ name: `${policy}/${routing}`, policy, routing, backends: n, sim })
  }
  const first = policies[0]
  if (options.oracle === true && first !== undefined) {
    const routing = options.routings?.[0]
    plans.push({
      name: ORACLE_SETUP,
      policy: first,
      ...(routing === undefined ? {} : { routing }),
      oracle: true,
      backends: n,
      sim,
    })
  }
  if (options.referenceSingleBackend === true && first !== undefined) {
    const blocks = sim.numGpuBlocksOverride ?? sim.numGpuBlocks ?? SIM_DEFAULTS.numGpuBlocks
    const blockSize = sim.blockSize ?? SIM_DEFAULTS.blockSize
    // vLLM caps the context to what the cache holds: the large cache must not accept longer prompts.
    const maxModelLen = Math.min(sim.maxModelLen ?? SIM_DEFAULTS.maxModelLen, blocks * blockSize)
    const { numGpuBlocksOverride: _override, ...rest } = sim
    plans.push({
      name: `${first}/single-${n}x-blocks`,
      policy: first,
      backends: 1,
      sim: { ...rest, numGpuBlocks: blocks * n, maxModelLen },
    })
  }
  return plans
}

export async function runCompare(options: CompareOptions): Promise<SetupResult[]> {
  const speed = options.speed ?? options.sim?.speed ?? 1
  const users = workloadUsers(options.workload)
  if (options.backendUrl !== undefined && (options.backends ?? 1) > 1) {
    throw errors.invalidWorkload(['--url', 'an external backend cannot be several emulators (--backends)'])
  }
  const results: SetupResult[] = []
  for (const plan of planSetups(options)) {
    const { name } = plan
    options.onSetupStart?.(name)
    const wallStart = Date.now()
    // One scaled clock per setup, shared by the emulators' pace, the gateway and the replay.
    const clock = speed === 1 ? createSystemClock() : createScaledClock(speed)
    const sims: SimHandle[] = []
    let gateway: Gateway | undefined
    let spread: SpreadProxy | undefined
    try {
      if (options.backendUrl === undefined) {
        for (let i = 0; i < plan.backends; i++) {
          // Each emulator its own seed, so replicas do not draw the same answer lengths in lockstep.
          const seed = options.seed + i * 1_000
          sims.push(await startSim({ logger: false, seed, ...plan.sim, speed, port: 0, host: '127.0.0.1' }))
        }
      }
      const backendUrls = options.backendUrl !== undefined ? [options.backendUrl] : sims.map((sim) => sim.url)
      let targetUrl = backendUrls[0] as string
      if (plan.policy === undefined) {
        if (backendUrls.length > 1) {
          spread = await startSpreadProxy(backendUrls)
          targetUrl = spread.url
        }
      } else {
        const config = compareGatewayConfig(
          backendUrls,
          plan.policy,
          users,
          options.deadlineMs ?? DEFAULT_COMPARE_DEADLINE_MS,
          plan.oracle === true ? oracleConfig(options.gatewayConfig ?? {}, users) : options.gatewayConfig,
          speed,
          plan.routing,
        )
        gateway = await createGateway({ config, clock, logger: false })
        targetUrl = await gateway.listen({ port: 0, host: '127.0.0.1' })
        await waitForGatewayReady(targetUrl)
      }
      const sampler = startSampler(
        clock,
        options.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS,
        backendUrls,
        // kvgate's metrics are on its admin listener.
        gateway ? gateway.adminUrl() : undefined,
      )
      const run = await runWorkload(options.workload, {
        ...options.run,
        ...(plan.oracle === true ? { outputHintHeader: outputHintHeaderOf(gateway) } : {}),
        baseUrl: targetUrl,
        clock,
        counter: options.counter,
        seed: options.seed,
      })
      await sampler.stop()
      const gatewayTotals = gateway === undefined ? undefined : await scrape(gateway.adminUrl())
      const fleet = fleetFigures(sampler.samples, backendUrls.length)
      const result: SetupResult = {
        name,
        ...(plan.policy === undefined ? {} : { policy: plan.policy }),
        run,
        summary: summarize(run, options.slo),
        samples: sampler.samples,
        preemptions: fleet.preemptions,
        maxKvUsage: fleet.maxKvUsage,
        backends: backendUrls.length,
        ...(fleet.prefixCacheHitRate === undefined ? {} : { prefixCacheHitRate: fleet.prefixCacheHitRate }),
        kvBalance: fleet.kvBalance,
        meanKvUsageByBackend: fleet.meanKvUsageByBackend,
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
      await spread?.close()
      await Promise.all(sims.map((sim) => sim.close()))
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
