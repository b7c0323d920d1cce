import { createAdmissionController, type Admission } from '../../src/admission/index.js'
import { jainIndex } from '../../src/bench/index.js'
import { createManualClock, createSeededRandom, type Random } from '../../src/core/index.js'
import type { KvgateError } from '../../src/errors/index.js'
import { createLedger } from '../../src/ledger/index.js'
import { policyFactories, type Policy, type PolicyUser } from '../../src/policies/index.js'

/**
 * The in-process fairness simulator, for the fairness suite (test/fairness) and the policy suite
 * (test/policies) alike: the real admission controller and ledger with a real policy, on a manual clock, in
 * front of a simple KV engine model instead of the emulator over HTTP. The engine admits whatever the
 * controller admits (its KV is exactly the ledger's reservations: no poll lag, no preemption), produces one
 * token per running request per `stepMs` (continuous batching, prefill folded into the first step), and
 * finishes a request at its target length. Deterministic per seed and about a second of CPU for a simulated
 * minute, so the fairness figures are exact and repeatable. A policy test isolates the policy by passing a
 * policy it built and `maxBypassMs: 0` (strict head-of-line: the dispatcher adds no order of its own).
 */
export interface WorkloadUser {
  readonly user: PolicyUser
  /** Poisson arrivals per second; Infinity keeps `backlogDepth` requests waiting (continuously backlogged). */
  readonly ratePerSecond: number
  readonly promptTokens: number
  readonly outputTokens: number
  /** The prediction admission is given; defaults to outputTokens (ignore_eos with max_tokens, as the tests send). */
  readonly predictedOutputTokens?: number
  readonly fromMs?: number
  readonly untilMs?: number
}

export interface FairnessRun {
  /** The policy's name. */
  readonly policy: string
  /** Weighted service per user, (wIn × prompt admitted + wOut × completion streamed) / weight, sampled. */
  readonly samples: readonly { atMs: number; service: ReadonlyMap<string, number> }[]
  readonly service: ReadonlyMap<string, number>
  /** Raw tokens served per user (prompt at admission + completion as streamed). */
  readonly tokens: ReadonlyMap<string, number>
  /** Per admitted request: its user, when it was admitted, its need, its TTFT. */
  readonly requests: readonly {
    user: string
    enqueuedAtMs: number
    admittedAtMs: number
    needTokens: number
    ttftMs: number
  }[]
  /** Per admission, when it happened: its user, its need (prompt + predicted) and how long it waited. */
  readonly admissions: readonly { atMs: number; user: string; tokens: number; waitedMs: number }[]
  readonly rejections: readonly { user: string; atMs: number; error: KvgateError }[]
  /** Requests that never produced a token before the run ended (still queued or just admitted). */
  readonly unserved: readonly { user: string; enqueuedAtMs: number }[]
  /** Mean share of the KV reserved by admitted requests, over the steps after the first second. */
  readonly kvUtilization: number
}

export interface FairnessOptions {
  /** A registered policy's name (built with `policyOptions`), or a policy the test built itself. */
  readonly policy: string | Policy
  readonly policyOptions?: Readonly<Record<string, unknown>>
  readonly users: readonly WorkloadUser[]
  readonly capacityTokens: number
  readonly durationMs: number
  /** One decode step (ms of simulated time). */
  readonly stepMs?: number
  readonly seed?: number
  readonly wIn?: number
  readonly wOut?: number
  readonly deadlineMs?: number
  readonly maxBypassMs?: number
  readonly backlogDepth?: number
  readonly sampleEveryMs?: number
  /** How often the gateway's poller would call onTick (ms). */
  readonly pollEveryMs?: number
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

function poissonGapMs(random: Random, ratePerSecond: number): number {
  return (-Math.log(1 - random.next()) / ratePerSecond) * 1_000
}

export async function runFairness(options: FairnessOptions): Promise<FairnessRun> {
  const stepMs = options.stepMs ?? 20
  const wIn = options.wIn ?? 1
  const wOut = options.wOut ?? 2
  const pollEveryMs = options.pollEveryMs ?? 100
  const random = createSeededRandom(options.seed ?? 1)
  const clock = createManualClock()
  const ledger = createLedger()
  const policy = typeof options.policy === 'string' ? buildPolicy(options.policy, options) : options.policy
  const controller = createAdmissionController({
    clock,
    policy,
    ledger,
    // The engine's KV is exactly what admission reserved, so the poll shows nothing the ledger lacks.
    backends: () => [{ id: 'engine', capacityTokens: options.capacityTokens, usedTokens: 0, usable: true }],
    headroomRatio: 0,
    deadlineTickMs: 50,
    maxQueueLength: 1_000_000,
    earlyReject: false,
    maxBypassMs: options.maxBypassMs ?? 2_000,
  })

  const service = new Map<string, number>(options.users.map((u) => [u.user.name, 0]))
  const tokens = new Map<string, number>(options.users.map((u) => [u.user.name, 0]))
  const samples: { atMs: number; service: Map<string, number> }[] = []
  const requests: FairnessRun['requests'][number][] = []
  const admissions: FairnessRun['admissions'][number][] = []
  const rejections: { user: string; atMs: number; error: KvgateError }[] = []
  const waiting = new Map<string, number>()
  const running: { admission: Admission; user: WorkloadUser; produced: number; enqueuedAtMs: number }[] = []
  // Per workload entry (a user may appear twice, e.g. to stop and return), not per user name.
  const nextArrivalMs = new Map<WorkloadUser, number>()
  // Tokens served in the last 10 s, for the tick's served-tokens-per-minute (what the poller measures).
  const served: { atMs: number; tokens: number }[] = []
  let servedHead = 0
  let servedSum = 0
  let nextId = 0
  let utilizationSum = 0
  let utilizationSteps = 0

  const serve = (u: WorkloadUser, rawTokens: number, weightedTokens: number, nowMs: number): void => {
    const name = u.user.name
    tokens.set(name, (tokens.get(name) ?? 0) + rawTokens)
    service.set(name, (service.get(name) ?? 0) + weightedTokens / u.user.weight)
    served.push({ atMs: nowMs, tokens: rawTokens })
    servedSum += rawTokens
  }

  const outstanding = new Map<string, { user: string; enqueuedAtMs: number }>()
  const submit = (u: WorkloadUser, nowMs: number): void => {
    const name = u.user.name
    const id = `q${nextId++}`
    outstanding.set(id, { user: name, enqueuedAtMs: nowMs })
    waiting.set(name, (waiting.get(name) ?? 0) + 1)
    controller
      .submit({
        id,
        user: u.user,
        model: 'sim',
        promptTokens: u.promptTokens,
        predictedOutputTokens: u.predictedOutputTokens ?? u.outputTokens,
        deadlineMs: options.deadlineMs ?? 600_000,
      })
      .then(
        (admission) => {
          waiting.set(name, (waiting.get(name) ?? 1) - 1)
          const admittedAtMs = clock.now()
          const { promptTokens, predictedOutputTokens } = admission.request
          admissions.push({
            atMs: admittedAtMs,
            user: name,
            tokens: promptTokens + predictedOutputTokens,
            waitedMs: admittedAtMs - nowMs,
          })
          serve(u, promptTokens, wIn * promptTokens, admittedAtMs)
          running.push({ admission, user: u, produced: 0, enqueuedAtMs: nowMs })
        },
        (error: KvgateError) => {
          outstanding.delete(id)
          waiting.set(name, (waiting.get(name) ?? 1) - 1)
          rejections.push({ user: name, atMs: clock.now(), error })
        },
      )
  }

  for (let nowMs = 0; nowMs <= options.durationMs; nowMs += stepMs) {
    if (nowMs > 0) clock.advance(stepMs)
    // One decode step: every running request produces a token; those at their length finish.
    for (let i = running.length - 1; i >= 0; i--) {
      const r = running[i] as (typeof running)[number]
      r.produced++
      if (r.produced === 1) {
        outstanding.delete(r.admission.id)
        r.admission.firstToken()
        requests.push({
          user: r.user.user.name,
          enqueuedAtMs: r.enqueuedAtMs,
          admittedAtMs: nowMs - stepMs,
          needTokens: r.admission.request.promptTokens + r.admission.request.predictedOutputTokens,
          ttftMs: nowMs - r.enqueuedAtMs,
        })
      }
      r.admission.recordTokens(1)
      serve(r.user, 1, wOut, nowMs)
      if (r.produced >= r.user.outputTokens) {
        running.splice(i, 1)
        r.admission.finish(r.produced)
      }
    }
    // Arrivals.
    for (const u of options.users) {
      const name = u.user.name
      if (nowMs < (u.fromMs ?? 0) || nowMs >= (u.untilMs ?? Number.POSITIVE_INFINITY)) continue
      if (u.ratePerSecond === Number.POSITIVE_INFINITY) {
        while ((waiting.get(name) ?? 0) < (options.backlogDepth ?? 8)) submit(u, nowMs)
        continue
      }
      let atMs = nextArrivalMs.get(u) ?? nowMs + poissonGapMs(random, u.ratePerSecond)
      while (atMs <= nowMs) {
        submit(u, nowMs)
        atMs += poissonGapMs(random, u.ratePerSecond)
      }
      nextArrivalMs.set(u, atMs)
    }
    // The metrics poll: adaptive policies re-divide what was served, then the dispatcher runs.
    if (nowMs % pollEveryMs === 0) {
      while (servedHead < served.length && (served[servedHead]?.atMs ?? 0) <= nowMs - 10_000) {
        servedSum -= served[servedHead]?.tokens ?? 0
        servedHead++
      }
      policy.onTick(nowMs, { servedTokensPerMinute: (servedSum * 60_000) / Math.max(stepMs, Math.min(nowMs, 10_000)) })
      controller.dispatch()
    }
    await settle()
    if (nowMs >= 1_000) {
      utilizationSum += ledger.reservedTokens() / options.capacityTokens
      utilizationSteps++
    }
    if (nowMs % (options.sampleEveryMs ?? 1_000) === 0) samples.push({ atMs: nowMs, service: new Map(service) })
  }
  // Before close(): closing rejects what is still queued, which would drop it from `outstanding`.
  const unserved = [...outstanding.values()]
  controller.close()
  await settle()
  const kvUtilization = utilizationSteps === 0 ? 0 : utilizationSum / utilizationSteps
  return { policy: policy.name, samples, service, tokens, requests, admissions, rejections, unserved, kvUtilization }
}

function buildPolicy(name: string, options: FairnessOptions): Policy {
  const factory = policyFactories[name]
  if (factory === undefined) throw new Error(`unknown policy ${name}`)
  return factory({ users: options.users.map((u) => u.user), options: options.policyOptions ?? {} })
}

/** Largest max−min spread of weighted service among `users`, over samples at or after `fromMs`. */
export function maxServiceDifference(run: FairnessRun, users: readonly string[], fromMs = 0): number {
  let worst = 0
  const base = run.samples.find((s) => s.atMs >= fromMs)
  for (const sample of run.samples) {
    if (sample.atMs < fromMs) continue
    const values = users.map((u) => (sample.service.get(u) ?? 0) - (base?.service.get(u) ?? 0))
    worst = Math.max(worst, Math.max(...values) - Math.min(...values))
  }
  return worst
}

/** Service gained by each user between `fromMs` and the end, weight-normalised. */
export function serviceSince(run: FairnessRun, users: readonly string[], fromMs: number): number[] {
  const base = run.samples.find((s) => s.atMs >= fromMs)
  const last = run.samples.at(-1)
  return users.map((u) => (last?.service.get(u) ?? 0) - (base?.service.get(u) ?? 0))
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

/** A small fixed-width table for the test log. */
export function printTable(
  title: string,
  header: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): void {
  const cells = [header, ...rows].map((row) => row.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)))
  const line = (row: readonly string[]): string => row.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ')
  console.log([`\n${title}`, line(cells[0] ?? []), ...cells.slice(1).map(line)].join('\n'))
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n)
  if (Math.abs(n) >= 100 || Number.isInteger(n)) return Math.round(n).toLocaleString('en-US')
  return n.toFixed(3)
}

/**
 * The reference two-user workload every fairness test reports on: two continuously backlogged users
 * sending 1:10 request rates of equal-sized requests (200 prompt + 100 output tokens) into 3,000 tokens of
 * KV (10 requests at a time, 5 requests/s served). Returns the service difference and Jain's index for
 * fifo and vtc, and prints them.
 */
export const REFERENCE = Object.freeze({
  capacityTokens: 3_000,
  promptTokens: 200,
  outputTokens: 100,
  durationMs: 60_000,
  lightRatePerSecond: 4,
  heavyRatePerSecond: 40,
})

export async function compareFifoAndVtc(title: string): Promise<Map<string, { difference: number; jain: number }>> {
  const light: PolicyUser = { name: 'light', weight: 1 }
  const heavy: PolicyUser = { name: 'heavy', weight: 1 }
  const figures = new Map<string, { difference: number; jain: number }>()
  for (const policy of ['fifo', 'vtc']) {
    const run = await runFairness({
      policy,
      users: [
        {
          user: light,
          ratePerSecond: REFERENCE.lightRatePerSecond,
          promptTokens: REFERENCE.promptTokens,
          outputTokens: REFERENCE.outputTokens,
        },
        {
          user: heavy,
          ratePerSecond: REFERENCE.heavyRatePerSecond,
          promptTokens: REFERENCE.promptTokens,
          outputTokens: REFERENCE.outputTokens,
        },
      ],
      capacityTokens: REFERENCE.capacityTokens,
      durationMs: REFERENCE.durationMs,
      seed: 11,
    })
    const users = ['light', 'heavy']
    figures.set(policy, {
      difference: maxServiceDifference(run, users, 2_000),
      jain: jainIndex(serviceSince(run, users, 2_000)),
    })
  }
  printTable(
    `${title} — reference workload: 2 backlogged users, 1:10 request rates, 60 s`,
    ['policy', 'max service difference', "Jain's index"],
    [...figures].map(([policy, f]) => [policy, f.difference, f.jain]),
  )
  return figures
}
