/**
 * The admission path without HTTP: what one dispatcher decision costs with 10, 1,000 and 10,000 requests
 * queued over up to 1,000 users, for every registered policy, and the memory a queued request holds.
 *
 * A decision here is what happens when a request finishes and KV room for one more appears: the dispatcher
 * admits one head (asking the policy for its order and the quota) and then fails to admit a second (the
 * room is gone), exactly as `dispatch()` runs in the gateway. The queue is kept at its size by submitting one
 * new request after each decision; that submit (enqueue + its own, failing, dispatch) is timed apart, and so
 * is a dispatch that finds no room at all (the failing pass alone).
 *
 *   node --expose-gc bench/perf/admission.js [--reps 15] [--decisions 500] [--queued 10,1000,10000]
 *     [--users 1000] [--policies fifo,tpm,vtc,dynamic-tpm] [--deep 10,10000,50000]
 */
import { createAdmissionController, type Admission, type AdmissionTicket } from '../../src/admission/index.js'
import { createManualClock } from '../../src/core/index.js'
import { createLedger } from '../../src/ledger/index.js'
import { policyFactories, type PolicyUser } from '../../src/policies/index.js'
import type { BackendCapacity } from '../../src/upstream/index.js'
import { median } from './lib/processes.js'
import { flag, loadNote, printTable } from './lib/table.js'

const reps = flag('reps', 15)
const decisions = flag('decisions', 500)
const queuedSizes = flag('queued', '10,1000,10000').split(',').map(Number)
const userCount = flag('users', 1000)
const policies = flag('policies', Object.keys(policyFactories).join(',')).split(',').filter(Boolean)
const memoryCount = 10_000 // requests queued for the memory figure

const PROMPT_TOKENS = 50
const PREDICTED_TOKENS = 50
const NEED_TOKENS = PROMPT_TOKENS + PREDICTED_TOKENS
const CAPACITY_TOKENS = 1_000_000_000 // one large backend: room is steered through its polled usage only

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) console.error('run with node --expose-gc for the memory figures')

// Weights 1–3 and quotas far above what the benchmark uses: quota policies do their bookkeeping but never block.
const users: PolicyUser[] = Array.from({ length: userCount }, (_, i) => ({
  name: `user-${i}`,
  weight: 1 + (i % 3),
  tokensPerMinute: 1e12,
  requestsPerMinute: 1e9,
}))

/** A controller over one backend whose free room the benchmark sets, with a manual clock (no timer fires). */
function setUp(
  policyName: string,
  deadlineMs = 3_600_000,
): {
  controller: ReturnType<typeof createAdmissionController>
  backend: { -readonly [K in keyof BackendCapacity]: BackendCapacity[K] }
  clock: ReturnType<typeof createManualClock>
  submit: (userIndex: number) => void
  admitted: Admission[]
} {
  const factory = policyFactories[policyName]
  if (factory === undefined) throw new Error(`unknown policy ${policyName}`)
  const clock = createManualClock(0)
  const ledger = createLedger()
  // Full: nothing fits until the benchmark frees room.
  const backend = { id: 'backend-0', capacityTokens: CAPACITY_TOKENS, usedTokens: CAPACITY_TOKENS, usable: true }
  const backends = [backend]
  const controller = createAdmissionController({
    clock,
    policy: factory({ users, options: {} }),
    ledger,
    backends: () => backends,
    headroomRatio: 0,
    deadlineTickMs: 50,
    maxQueueLength: 1_000_000,
    earlyReject: false,
    maxBypassMs: 2_000,
  })
  const admitted: Admission[] = []
  let seq = 0
  const submit = (userIndex: number): void => {
    const ticket: AdmissionTicket = {
      id: `req-${++seq}`,
      user: users[userIndex % users.length] as PolicyUser,
      model: 'perf-model',
      promptTokens: PROMPT_TOKENS,
      predictedOutputTokens: PREDICTED_TOKENS,
      deadlineMs,
    }
    controller.submit(ticket).then(
      (admission) => admitted.push(admission),
      () => {},
    )
  }
  return { controller, backend, clock, submit, admitted }
}

const best = (samples: readonly DecisionSample[]): number => Math.min(...samples.map((s) => s.decisionNs))

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

interface DecisionSample {
  decisionNs: number
  submitNs: number
  /** A dispatch when nothing fits: the pass every decision ends with, and every enqueue runs. */
  noFitNs: number
}

/**
 * A queue held at `queued` requests over min(queued, users) users, round robin. `batch()` runs `decisions`
 * decisions and returns their mean costs; the queue size is the same after each batch.
 */
async function decisionBench(
  policyName: string,
  queued: number,
  spread: number,
): Promise<{ batch(): Promise<DecisionSample>; close(): Promise<void> }> {
  const { controller, backend, clock, submit, admitted } = setUp(policyName)
  let nextUser = 0
  for (let i = 0; i < queued; i += 1) submit(nextUser++ % spread)
  await nextTurn()
  return {
    async batch() {
      let noFitNs = 0n
      for (let i = 0; i < decisions; i += 1) {
        const t = process.hrtime.bigint()
        controller.dispatch() // the backend is full: nothing can fit, nothing is admitted
        noFitNs += process.hrtime.bigint() - t
      }
      let decisionNs = 0n
      let submitNs = 0n
      for (let i = 0; i < decisions; i += 1) {
        backend.usedTokens -= NEED_TOKENS // a request finished: room for exactly one
        const t0 = process.hrtime.bigint()
        controller.dispatch()
        const t1 = process.hrtime.bigint()
        submit(nextUser++ % spread)
        const t2 = process.hrtime.bigint()
        decisionNs += t1 - t0
        submitNs += t2 - t1
      }
      if (controller.queueDepth() !== queued)
        throw new Error(`queue drifted to ${controller.queueDepth()} (expected ${queued})`)
      // Settle untimed: the admissions finish while the backend looks full, so finishing admits nothing more.
      await nextTurn()
      backend.usedTokens = CAPACITY_TOKENS * 2
      for (const admission of admitted.splice(0)) admission.finish(PREDICTED_TOKENS)
      backend.usedTokens = CAPACITY_TOKENS
      clock.advance(decisions) // 1 ms per decision: quota windows and counters see time pass
      return {
        decisionNs: Number(decisionNs) / decisions,
        submitNs: Number(submitNs) / decisions,
        noFitNs: Number(noFitNs) / decisions,
      }
    },
    async close() {
      controller.close()
      await nextTurn()
    },
  }
}

/**
 * Every queue size of one policy side by side: each repetition runs one batch at each size in turn, so a
 * burst of load from the rest of the (shared) machine falls on all sizes alike; ratios are taken within a
 * repetition. Repetition 0 warms up and is not kept.
 */
async function measureDecisions(
  policyName: string,
  sizes: readonly number[],
  users: number,
): Promise<Map<number, DecisionSample[]>> {
  const benches = new Map<number, Awaited<ReturnType<typeof decisionBench>>>()
  for (const queued of sizes) benches.set(queued, await decisionBench(policyName, queued, Math.min(queued, users)))
  const samples = new Map<number, DecisionSample[]>(sizes.map((queued) => [queued, []]))
  for (let rep = 0; rep <= reps; rep += 1) {
    for (const queued of sizes) {
      const sample = await (benches.get(queued) as Awaited<ReturnType<typeof decisionBench>>).batch()
      if (rep > 0) samples.get(queued)?.push(sample)
    }
  }
  for (const bench of benches.values()) await bench.close()
  return samples
}

async function measureMemory(policyName: string): Promise<number> {
  if (gc === undefined) return Number.NaN
  const { controller, submit } = setUp(policyName)
  // Warm the code paths so compiled code and inline caches are not counted as queue memory.
  for (let i = 0; i < 100; i += 1) submit(i)
  await nextTurn()
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < memoryCount; i += 1) submit(i)
  await nextTurn()
  gc()
  const after = process.memoryUsage().heapUsed
  const bytes = (after - before) / memoryCount
  controller.close()
  await nextTurn()
  return bytes
}

/**
 * A burst that times out together: `queued` requests over `spread` users pass their deadline in the same
 * tick. Returns the ms the whole sweep takes: the manual clock runs its continuations (turns of at most
 * 1,000 rejections since b7fd0f8; before that, one turn that held the event loop throughout) inside advance().
 */
async function measureSweep(policyName: string, queued: number, spread: number): Promise<number> {
  const DEADLINE_MS = 1_000
  const { controller, clock, submit } = setUp(policyName, DEADLINE_MS)
  for (let i = 0; i < queued; i += 1) submit(i % spread)
  await nextTurn()
  const start = process.hrtime.bigint()
  clock.advance(DEADLINE_MS + 100) // the deadline tick runs inside advance()
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (controller.queueDepth() !== 0) throw new Error(`${controller.queueDepth()} requests survived their deadline`)
  controller.close()
  await nextTurn()
  return ms
}

/** One user holding the whole queue: every decision pops that user's head (finding 3 of docs/benchmarks.md). */
const deepSizes = flag('deep', '10,10000,50000')
  .split(',')
  .map(Number)
  .filter((n) => n > 0)
const deepRows: (string | number)[][] = []

const sweepQueued = Math.max(...queuedSizes)
const sweepRows: (string | number)[][] = []
const rows: (string | number)[][] = []
for (const policyName of policies) {
  for (const spread of [1, Math.min(userCount, sweepQueued)]) {
    const runs: number[] = []
    for (let rep = 0; rep < 3; rep += 1) runs.push(await measureSweep(policyName, sweepQueued, spread))
    sweepRows.push([policyName, sweepQueued, spread, median(runs), (median(runs) * 1000) / sweepQueued])
  }
  const perSize = await measureDecisions(policyName, queuedSizes, userCount)
  for (const queued of queuedSizes) {
    console.error(
      `${policyName} @ ${queued} queued: ${median((perSize.get(queued) ?? []).map((s) => s.decisionNs / 1000)).toFixed(2)} µs/decision`,
    )
  }
  if (deepSizes.length > 0) {
    const deep = await measureDecisions(policyName, deepSizes, 1)
    const deepBase = deep.get(deepSizes[0] ?? 0) ?? []
    for (const queued of deepSizes) {
      const samples = deep.get(queued) ?? []
      deepRows.push([
        policyName,
        queued,
        (median(samples.map((s) => s.decisionNs)) / 1000).toFixed(2),
        (best(samples) / 1000).toFixed(2),
        `${(best(samples) / best(deepBase)).toFixed(2)}×`,
      ])
    }
  }
  const memory = median([
    await measureMemory(policyName),
    await measureMemory(policyName),
    await measureMemory(policyName),
  ])
  const base = perSize.get(queuedSizes[0] ?? 0) ?? []
  for (const queued of queuedSizes) {
    const samples = perSize.get(queued) ?? []
    rows.push([
      policyName,
      queued,
      Math.min(queued, userCount),
      (median(samples.map((s) => s.decisionNs)) / 1000).toFixed(2),
      (best(samples) / 1000).toFixed(2),
      // From the best batches: on a shared machine the slower batches measure the neighbours, not the queue.
      `${(best(samples) / best(base)).toFixed(2)}×`,
      (median(samples.map((s) => s.noFitNs)) / 1000).toFixed(2),
      (median(samples.map((s) => s.submitNs)) / 1000).toFixed(2),
      queued === queuedSizes[0] ? Math.round(memory) : '',
    ])
  }
}
printTable(
  `Admission path (no HTTP), median of ${reps} interleaved batches of ${decisions} decisions; memory over ${memoryCount.toLocaleString('en-US')} queued requests, ${loadNote()} at the end`,
  [
    'policy',
    'queued',
    'users',
    'µs / decision (median)',
    'µs (best batch)',
    `best vs ${queuedSizes[0]} queued`,
    'µs / no-fit dispatch',
    'µs / submit',
    'bytes / queued request',
  ],
  rows,
)
printTable(
  `Deadline sweep: ${sweepQueued.toLocaleString('en-US')} queued requests pass their deadline in one tick (median of 3)`,
  ['policy', 'queued', 'users', 'ms, whole sweep', 'µs / request'],
  sweepRows,
)
if (deepRows.length > 0) {
  printTable(
    `One user holding the whole queue, median of ${reps} interleaved batches of ${decisions} decisions`,
    ['policy', 'queued', 'µs / decision (median)', 'µs (best batch)', `best vs ${deepSizes[0]} queued`],
    deepRows,
  )
}
