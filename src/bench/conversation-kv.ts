import type { ClosedLoopOrder, KvAccessTrace } from './kv-access-trace.js'
import { lookaheadEnds, reuseDistances } from './kv-access-trace.js'
import type { KvCost } from './kv-models.js'
import { kvTierPolicies, simulateKvTier } from './kv-tier-policies.js'
import type { Description } from './statistics.js'
import { describe, quantile } from './statistics.js'

/**
 * Seed 000's analyses of conversation KV reuse, over a `KvAccessTrace`: per user, how long and how many
 * rounds; per request, the history it carries (the KV to load or recompute); the weighted reuse distance of
 * every returning turn; and the hit rates of a host-memory KV tier under FIFO, LRU, queue-aware and Belady's
 * optimal policy, overall, by reuse distance and over time; and the lower bound of the reuse distance
 * against the previous answer's length, per hour.
 */
export interface ConversationKvOptions {
  kv: KvCost
  /** Host-memory tier sizes in GiB (2^30 bytes), as vLLM's `--kv-offloading-size`. */
  hostMemoryGiB: readonly number[]
  /** Traces: a request waits this long before it is served, so the queue holds what arrived meanwhile. */
  queueWindowSec: number
  /** Conversation inputs: the closed loop whose order the tier sees (and whose open conversations wait). */
  closedLoop: ClosedLoopOrder
}

/** 30 s: a request served 30 s after it arrived is a loaded server's queue, not an idle one's. */
export const DEFAULT_QUEUE_WINDOW_SEC = 30
/** Seed 000's host has 200 GB; the issue's sweep halves it twice. */
export const DEFAULT_HOST_MEMORY_GIB = [50, 100, 200] as const

const GIB = 2 ** 30
/** Points kept of a CDF for the JSON and the charts: enough to draw, small for 100k requests. */
const CDF_POINTS = 200
/** Quantile buckets of the reuse distance for the hit-rate-by-distance figures. */
const REUSE_DISTANCE_BUCKETS = 10
/** Answer-length buckets (tokens) for the reuse distance lower bound. */
export const ANSWER_EDGES_TOKENS = [0, 32, 64, 128, 256, 512, 1024, 2048] as const
/** Rounds at or above this are shown together in the history-by-round figures. */
const MAX_ROUND_SHOWN = 32

export type Cdf = [value: number, fraction: number][]
type PolicyRates = Record<string, (number | null)[]>

export interface PolicyHitRate {
  policy: string
  /** History bytes found in the tier over all history bytes read. */
  hitRate: number | null
  /** Returning turns whose whole history was in the tier. */
  requestHitRate: number | null
  hitBytes: number
  missBytes: number
}

export interface ConversationKvAnalysis {
  model: KvCost
  order: KvAccessTrace['order']
  closedLoop?: { numClients: number; maxActiveConversations: number }
  requests: number
  conversations: number
  /** Requests with history (a later round of a conversation). */
  returningTurns: number
  users: {
    count: number
    /** Requests (rounds) per user, all their conversations together. */
    rounds: Description
    roundsHistogram: { rounds: number; users: number }[]
    conversations: Description
    /** First to last request of the user (traces with times). */
    durationSec?: Description
    durationCdfSec?: Cdf
  }
  history: {
    tokens: Description
    bytes: Description
    totalBytes: number
    /** Requests with no history: first rounds and single requests. */
    firstTurnShare: number
    cdfBytes: Cdf
    byRound: { round: number; orMore?: true; requests: number; meanTokens: number; meanBytes: number }[]
    /** History bytes to move per second of the trace, in buckets (traces with times). */
    loadOverTime?: { bucketSec: number; bytesPerSec: number[]; describe: Description }
  }
  reuseDistance: { turns: number; bytes: Description; cdfBytes: Cdf }
  hostMemory: {
    /** What "waiting" means for queue-aware: requests arrived within the window, or the open conversations. */
    queueWindow: { seconds: number } | { requests: number }
    sizes: { sizeGiB: number; capacityTokens: number; policies: PolicyHitRate[] }[]
  }
  hitRateByReuseDistance: {
    buckets: { fromBytes: number; toBytes: number; meanBytes: number; turns: number; historyBytes: number }[]
    sizes: { sizeGiB: number; policies: PolicyRates }[]
  }
  hitRateOverTime?: { bucketSec: number; startsSec: number[]; sizes: { sizeGiB: number; policies: PolicyRates }[] }
  reuseDistanceLowerBound: {
    answerEdgesTokens: number[]
    windows: {
      label: string
      fromSec?: number
      buckets: {
        fromTokens: number
        toTokens: number | null
        turns: number
        minBytes: number | null
        p50Bytes: number | null
      }[]
    }[]
  }
}

const rate = (num: number, den: number): number | null => (den > 0 ? num / den : null)

/** An empirical CDF as at most `maxPoints` step points, the last at fraction 1. */
export function cdfPoints(sortedValues: readonly number[], maxPoints = CDF_POINTS): Cdf {
  const n = sortedValues.length
  if (n === 0) return []
  const out: Cdf = []
  const count = Math.min(n, maxPoints)
  for (let k = 1; k <= count; k++) {
    const i = Math.ceil((k * n) / count) - 1
    out.push([sortedValues[i] as number, (i + 1) / n])
  }
  return out
}

const ascending = (values: Iterable<number>): number[] => Array.from(Float64Array.from(values).sort())

/** A bucket width from these steps giving at most `maxBuckets` buckets over `durationSec`. */
export function bucketSeconds(durationSec: number, maxBuckets: number): number {
  const steps = [1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 21600, 86400]
  return steps.find((s) => durationSec / s <= maxBuckets) ?? 86400
}

export function analyzeConversationKv(trace: KvAccessTrace, options: ConversationKvOptions): ConversationKvAnalysis {
  const bpt = options.kv.bytesPerToken
  const n = trace.steps
  const distance = reuseDistances(trace)
  const returning: number[] = []
  for (let i = 0; i < n; i++) if ((distance[i] as number) >= 0) returning.push(i)

  const queueWindow =
    trace.order === 'arrival'
      ? { seconds: options.queueWindowSec }
      : { requests: openConversations(options.closedLoop) }
  const lookaheadEnd = lookaheadEnds(trace, queueWindow)
  const runs = options.hostMemoryGiB.map((sizeGiB) => {
    const capacityTokens = Math.floor((sizeGiB * GIB) / bpt)
    return {
      sizeGiB,
      capacityTokens,
      hits: kvTierPolicies.map((p) => ({
        policy: p.name,
        hits: simulateKvTier(trace, p, { capacityTokens, lookaheadEnd }),
      })),
    }
  })

  const out: ConversationKvAnalysis = {
    model: options.kv,
    order: trace.order,
    requests: n,
    conversations: trace.conversations.length,
    returningTurns: returning.length,
    users: userFigures(trace),
    history: historyFigures(trace, bpt),
    reuseDistance: (() => {
      const sorted = ascending(returning.map((i) => (distance[i] as number) * bpt))
      return { turns: returning.length, bytes: describe(sorted), cdfBytes: cdfPoints(sorted) }
    })(),
    hostMemory: {
      queueWindow,
      sizes: runs.map((run) => ({
        sizeGiB: run.sizeGiB,
        capacityTokens: run.capacityTokens,
        policies: run.hits.map(({ policy, hits }) => policyHitRate(trace, returning, policy, hits, bpt)),
      })),
    },
    hitRateByReuseDistance: byReuseDistance(trace, returning, distance, runs, bpt),
    reuseDistanceLowerBound: lowerBound(trace, returning, distance, bpt),
  }
  if (trace.order === 'closed-loop') {
    out.closedLoop = {
      numClients: options.closedLoop.numClients,
      maxActiveConversations: openConversations(options.closedLoop),
    }
  }
  if (trace.timeSec !== undefined) out.hitRateOverTime = overTime(trace, trace.timeSec, returning, runs)
  return out
}

/** Conversations a closed loop keeps open: each client's share of `maxActiveConversations`, at least one. */
function openConversations(order: ClosedLoopOrder): number {
  const clients = Math.max(1, order.numClients)
  return clients * Math.max(1, Math.floor((order.maxActiveConversations ?? clients) / clients))
}

function policyHitRate(
  trace: KvAccessTrace,
  returning: readonly number[],
  policy: string,
  hits: Float64Array,
  bpt: number,
): PolicyHitRate {
  let hit = 0
  let read = 0
  let whole = 0
  for (const i of returning) {
    const history = trace.historyTokens[i] as number
    hit += hits[i] as number
    read += history
    if ((hits[i] as number) >= history) whole++
  }
  return {
    policy,
    hitRate: rate(hit, read),
    requestHitRate: rate(whole, returning.length),
    hitBytes: hit * bpt,
    missBytes: (read - hit) * bpt,
  }
}

function userFigures(trace: KvAccessTrace): ConversationKvAnalysis['users'] {
  const users = new Map<string, { rounds: number; conversations: Set<number>; first: number; last: number }>()
  for (let i = 0; i < trace.steps; i++) {
    const c = trace.conversation[i] as number
    const name = (trace.conversations[c] as { user: string }).user
    const t = trace.timeSec?.[i] ?? 0
    let u = users.get(name)
    if (u === undefined) {
      u = { rounds: 0, conversations: new Set(), first: t, last: t }
      users.set(name, u)
    }
    u.rounds++
    u.conversations.add(c)
    u.last = t
  }
  const list = [...users.values()]
  const histogram = new Map<number, number>()
  for (const u of list) histogram.set(u.rounds, (histogram.get(u.rounds) ?? 0) + 1)
  const out: ConversationKvAnalysis['users'] = {
    count: list.length,
    rounds: describe(list.map((u) => u.rounds)),
    roundsHistogram: [...histogram.entries()].sort((a, b) => a[0] - b[0]).map(([rounds, users]) => ({ rounds, users })),
    conversations: describe(list.map((u) => u.conversations.size)),
  }
  if (trace.timeSec !== undefined) {
    const durations = ascending(list.map((u) => u.last - u.first))
    out.durationSec = describe(durations)
    out.durationCdfSec = cdfPoints(durations)
  }
  return out
}

function historyFigures(trace: KvAccessTrace, bpt: number): ConversationKvAnalysis['history'] {
  const tokens = ascending(trace.historyTokens)
  const bytes = tokens.map((t) => t * bpt)
  const rounds = new Map<number, { requests: number; tokens: number }>()
  let first = 0
  for (let i = 0; i < trace.steps; i++) {
    const history = trace.historyTokens[i] as number
    if (history === 0) first++
    const round = Math.min(trace.round[i] as number, MAX_ROUND_SHOWN)
    const r = rounds.get(round) ?? { requests: 0, tokens: 0 }
    r.requests++
    r.tokens += history
    rounds.set(round, r)
  }
  const out: ConversationKvAnalysis['history'] = {
    tokens: describe(tokens),
    bytes: describe(bytes),
    totalBytes: bytes.reduce((a, b) => a + b, 0),
    firstTurnShare: trace.steps > 0 ? first / trace.steps : 0,
    cdfBytes: cdfPoints(bytes),
    byRound: [...rounds.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([round, r]) => ({
        round,
        ...(round === MAX_ROUND_SHOWN ? { orMore: true as const } : {}),
        requests: r.requests,
        meanTokens: r.tokens / r.requests,
        meanBytes: (r.tokens / r.requests) * bpt,
      })),
  }
  const times = trace.timeSec
  if (times !== undefined && trace.steps > 0) {
    const duration = times[trace.steps - 1] as number
    const bucketSec = bucketSeconds(duration, 100)
    const buckets = new Array<number>(Math.floor(duration / bucketSec) + 1).fill(0)
    for (let i = 0; i < trace.steps; i++) {
      const b = Math.floor((times[i] as number) / bucketSec)
      buckets[b] = (buckets[b] as number) + (trace.historyTokens[i] as number) * bpt
    }
    const perSec = buckets.map((v) => v / bucketSec)
    out.loadOverTime = { bucketSec, bytesPerSec: perSec, describe: describe(perSec) }
  }
  return out
}

interface Run {
  sizeGiB: number
  hits: { policy: string; hits: Float64Array }[]
}

/** Rates per bucket for every run: hit tokens over history tokens of the returning turns in each bucket. */
function bucketRates(
  trace: KvAccessTrace,
  returning: readonly number[],
  bucketOf: (step: number) => number,
  buckets: number,
  runs: readonly Run[],
): { sizeGiB: number; policies: PolicyRates }[] {
  const read = new Float64Array(buckets)
  for (const i of returning) read[bucketOf(i)] = (read[bucketOf(i)] as number) + (trace.historyTokens[i] as number)
  return runs.map((run) => {
    const policies: PolicyRates = {}
    for (const { policy, hits } of run.hits) {
      const hit = new Float64Array(buckets)
      for (const i of returning) hit[bucketOf(i)] = (hit[bucketOf(i)] as number) + (hits[i] as number)
      policies[policy] = Array.from(hit, (h, b) => rate(h, read[b] as number))
    }
    return { sizeGiB: run.sizeGiB, policies }
  })
}

function byReuseDistance(
  trace: KvAccessTrace,
  returning: readonly number[],
  distance: Float64Array,
  runs: readonly Run[],
  bpt: number,
): ConversationKvAnalysis['hitRateByReuseDistance'] {
  const sorted = ascending(returning.map((i) => distance[i] as number))
  if (sorted.length === 0) return { buckets: [], sizes: runs.map((r) => ({ sizeGiB: r.sizeGiB, policies: {} })) }
  // Buckets start at every tenth of the sorted distances, so each holds about as many turns; a run of equal
  // distances stays in one bucket. Each is [start, next start), the last [start, max].
  const edges: number[] = []
  for (let k = 0; k < REUSE_DISTANCE_BUCKETS; k++) {
    const v = sorted[Math.floor((k * sorted.length) / REUSE_DISTANCE_BUCKETS)] as number
    if (edges.length === 0 || v > (edges[edges.length - 1] as number)) edges.push(v)
  }
  edges.push(sorted[sorted.length - 1] as number)
  const count = edges.length - 1
  const bucketOf = (i: number): number => {
    const d = distance[i] as number
    let lo = 0
    let hi = count - 1
    // The last bucket includes its upper edge; the others are [from, to).
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (d >= (edges[mid] as number)) lo = mid
      else hi = mid - 1
    }
    return lo
  }
  const stats = Array.from({ length: count }, () => ({ turns: 0, distance: 0, history: 0 }))
  for (const i of returning) {
    const s = stats[bucketOf(i)] as { turns: number; distance: number; history: number }
    s.turns++
    s.distance += distance[i] as number
    s.history += trace.historyTokens[i] as number
  }
  return {
    buckets: stats.map((s, b) => ({
      fromBytes: (edges[b] as number) * bpt,
      toBytes: (edges[b + 1] as number) * bpt,
      meanBytes: s.turns > 0 ? (s.distance / s.turns) * bpt : 0,
      turns: s.turns,
      historyBytes: s.history * bpt,
    })),
    sizes: bucketRates(trace, returning, bucketOf, count, runs),
  }
}

function overTime(
  trace: KvAccessTrace,
  times: Float64Array,
  returning: readonly number[],
  runs: readonly Run[],
): NonNullable<ConversationKvAnalysis['hitRateOverTime']> {
  const duration = trace.steps > 0 ? (times[trace.steps - 1] as number) : 0
  const bucketSec = bucketSeconds(duration, 24)
  const count = Math.floor(duration / bucketSec) + 1
  return {
    bucketSec,
    startsSec: Array.from({ length: count }, (_, b) => b * bucketSec),
    sizes: bucketRates(trace, returning, (i) => Math.floor((times[i] as number) / bucketSec), count, runs),
  }
}

/**
 * The least reuse distance seen for a returning turn whose previous answer had a given length, per hour of
 * the trace (one window for closed-loop orders): while an answer is generated and read, other conversations
 * run, so a longer answer leaves a longer distance behind it.
 */
function lowerBound(
  trace: KvAccessTrace,
  returning: readonly number[],
  distance: Float64Array,
  bpt: number,
): ConversationKvAnalysis['reuseDistanceLowerBound'] {
  const edges = [...ANSWER_EDGES_TOKENS]
  const windows = new Map<number, number[][]>()
  for (const i of returning) {
    const hour = trace.timeSec !== undefined ? Math.floor((trace.timeSec[i] as number) / 3600) : 0
    const answer = trace.outputTokens[trace.previous[i] as number] as number
    let b = edges.length - 1
    while (b > 0 && answer < (edges[b] as number)) b--
    let lists = windows.get(hour)
    if (lists === undefined) {
      lists = edges.map(() => [])
      windows.set(hour, lists)
    }
    ;(lists[b] as number[]).push((distance[i] as number) * bpt)
  }
  return {
    answerEdgesTokens: edges,
    windows: [...windows.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([hour, lists]) => ({
        label: trace.timeSec !== undefined ? `hour ${hour}` : 'all',
        ...(trace.timeSec !== undefined ? { fromSec: hour * 3600 } : {}),
        buckets: lists.map((list, b) => {
          const sorted = ascending(list)
          return {
            fromTokens: edges[b] as number,
            toTokens: b + 1 < edges.length ? (edges[b + 1] as number) : null,
            turns: sorted.length,
            minBytes: sorted.length > 0 ? (sorted[0] as number) : null,
            p50Bytes: sorted.length > 0 ? quantile(sorted, 0.5) : null,
          }
        }),
      })),
  }
}
