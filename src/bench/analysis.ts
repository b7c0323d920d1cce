import type { Description } from './statistics.js'
import { describe, fitZipf, mean } from './statistics.js'
import { CHAT_OVERHEAD_TOKENS } from './prompts.js'
import { textTable } from './format.js'
import type { ConversationKvAnalysis, ConversationKvOptions } from './conversation-kv.js'
import { analyzeConversationKv } from './conversation-kv.js'
import { formatConversationKv } from './conversation-kv-format.js'
import { buildKvAccessTrace, hasConversations } from './kv-access-trace.js'
import type { Conversation, TraceRequest, Workload } from './workload.js'
import { MOONCAKE_BLOCK_TOKENS } from './workload.js'

/**
 * `kvgate bench analyze`: what a workload looks like before it is replayed — seed 004's requests per second
 * over time, per-user shares with a Zipf fit, seed 000's conversation rounds and durations, length
 * percentiles, seed 003's prefix-sharing figures for conversation and hash-id workloads, and seed 000's
 * conversation-KV figures (history to load, reuse distance, host-memory tier hit rates) where there are
 * conversations.
 */
export interface PrefixSharingFigures {
  blockSize: number
  /** Per request: share of prompt tokens in leading full blocks some earlier request already had. */
  sharingFraction: Description
  /** Distinct blocks accessed by more than one request, over all distinct blocks. */
  blockReuseRate: number
  distinctBlocks: number
  /** Accesses per distinct block. */
  blockHits: Description
  /** Seconds between consecutive accesses of one block (trace time); empty without arrival times. */
  reuseGapSec: Description
}

export interface WorkloadAnalysis {
  format: string
  requests: number
  skippedRows: number
  durationSec?: number
  rate?: { bucketSec: number; requestsPerSec: number[]; describe: Description; peak: number; mean: number }
  users: {
    count: number
    top: { user: string; requests: number; share: number }[]
    zipf?: { alpha: number; rSquared: number }
  }
  conversations?: { count: number; rounds: Description; durationSec?: Description }
  /** New-turn tokens for conversation rounds, whole prompts otherwise. */
  inputTokens: Description
  /** Whole prompts as sent, history included. */
  promptTokens: Description
  outputTokens: Description
  prefixSharing?: PrefixSharingFigures[]
  /** Requests the prefix-sharing study looked at, when capped. */
  prefixSharingRequests?: number
  /** Seed 000's analyses, for workloads with conversations (see conversation-kv.ts). */
  conversationKv?: ConversationKvAnalysis
}

export interface AnalyzeOptions {
  blockSizes?: readonly number[]
  /** The conversation-KV section's settings; without them the section is left out. */
  conversationKv?: ConversationKvOptions
}

/** A prompt as runs of tokens: equal (key, offset) means an equal token, which is all block hashing needs. */
type Segment = readonly [key: string, length: number]

interface PromptShape {
  timeSec?: number
  segments: Segment[]
  /** The conversation whose round this is: its previous round's prompt is usually a prefix of this one. */
  conversation?: string
}

/** Prefix-sharing work grows with prompt length × requests; past this many requests it is sampled from the start. */
export const PREFIX_SHARING_MAX_REQUESTS = 20_000

const USER_MARK: Segment = ['<|user|>', 1]
const ASSISTANT_MARK: Segment = ['<|assistant|>', 1]

/** The prompts the bench would send for a trace, as segments (see prompts.ts for the token arithmetic). */
function traceShapes(requests: readonly TraceRequest[]): PromptShape[] {
  const history = new Map<string, Segment[][]>()
  return requests.map((r, i) => {
    const content = Math.max(0, r.inputTokens - CHAT_OVERHEAD_TOKENS)
    const timeSec = r.arrivalMs / 1000
    if (r.conversationId !== undefined) {
      const rounds = history.get(r.conversationId) ?? []
      history.set(r.conversationId, rounds)
      const round = r.round ?? rounds.length
      const segments: Segment[] = []
      for (let k = 0; k < round; k++) segments.push(...(rounds[k] ?? []))
      const userTurn: Segment[] = [USER_MARK, [`u:${r.conversationId}:${round}`, content]]
      segments.push(...userTurn, ASSISTANT_MARK)
      rounds[round] = [...userTurn, ASSISTANT_MARK, [`a:${r.conversationId}:${round}`, r.outputTokens]]
      return { timeSec, segments, conversation: r.conversationId }
    }
    if (r.hashIds !== undefined) {
      const segments: Segment[] = [USER_MARK]
      let remaining = content
      for (const id of r.hashIds) {
        if (remaining <= 0) break
        const take = Math.min(MOONCAKE_BLOCK_TOKENS, remaining)
        segments.push([`h:${id}`, take])
        remaining -= take
      }
      if (remaining > 0) segments.push([`pad:${i}`, remaining])
      segments.push(ASSISTANT_MARK)
      return { timeSec, segments }
    }
    return { timeSec, segments: [USER_MARK, [`r:${i}`, content], ASSISTANT_MARK] }
  })
}

/**
 * Whole-prompt lengths as `traceShapes` would sum them, without building the shapes: a long trace's
 * shapes hold every round's history again and cost seconds of garbage collection, and only the
 * prefix-sharing sample needs them.
 */
function tracePromptLengths(requests: readonly TraceRequest[]): number[] {
  const rounds = new Map<string, number[]>()
  return requests.map((r) => {
    const turn = 2 + Math.max(0, r.inputTokens - CHAT_OVERHEAD_TOKENS)
    if (r.conversationId === undefined) return turn
    const lengths = rounds.get(r.conversationId) ?? []
    rounds.set(r.conversationId, lengths)
    const round = r.round ?? lengths.length
    let history = 0
    for (let k = 0; k < round; k++) history += lengths[k] ?? 0
    lengths[round] = turn + r.outputTokens
    return history + turn
  })
}

/** Closed-loop conversations: turn by turn, conversation after conversation (no clock). */
function conversationShapes(conversations: readonly Conversation[], commonPrefixTokens: number): PromptShape[] {
  const out: PromptShape[] = []
  for (const c of conversations) {
    const segments: Segment[] = []
    c.turns.forEach((turn, k) => {
      const userTurn: Segment[] = [USER_MARK]
      if (k === 0) userTurn.push(['common', commonPrefixTokens], [`p:${c.id}`, c.prefixTokens])
      userTurn.push([`u:${c.id}:${k}`, turn.userTokens])
      out.push({ segments: [...segments, ...userTurn, ASSISTANT_MARK], conversation: c.id })
      segments.push(...userTurn, ASSISTANT_MARK, [`a:${c.id}:${k}`, turn.outputTokens])
    })
  }
  return out
}

/**
 * vLLM-style block hashing with an unbounded cache: full blocks only, each block's identity chained on its
 * parent's, so a prompt's cached part is its leading run of blocks seen before.
 */
export function prefixSharing(shapes: readonly PromptShape[], blockSize: number): PrefixSharingFigures {
  const ids = new Map<string, number>()
  const hits: number[] = []
  const lastSeen: (number | undefined)[] = []
  const gaps: number[] = []
  const fractions: number[] = []
  // Per conversation, its last prompt and that prompt's block ids: a round's prompt starts with the previous
  // round's, whose full blocks need no hashing again (which made long conversations quadratic).
  const previousRound = new Map<string, { segments: readonly Segment[]; blocks: number[] }>()
  for (const shape of shapes) {
    const total = shape.segments.reduce((n, [, len]) => n + len, 0)
    const blocks: number[] = []
    let shared = 0
    let stillShared = true
    const visit = (id: number): void => {
      hits[id] = (hits[id] as number) + 1
      const previous = lastSeen[id]
      if (shape.timeSec !== undefined) {
        if (previous !== undefined) gaps.push(shape.timeSec - previous)
        lastSeen[id] = shape.timeSec
      }
      blocks.push(id)
    }
    const before = shape.conversation !== undefined ? previousRound.get(shape.conversation) : undefined
    if (before !== undefined && isPrefix(before.segments, shape.segments)) {
      // Blocks seen before, so shared while nothing new came first (nothing can: they lead the prompt).
      for (const id of before.blocks) visit(id)
      shared = before.blocks.length * blockSize
    }
    let parent = blocks.length > 0 ? (blocks[blocks.length - 1] as number) : -1
    // Find where the first block to hash starts.
    let segment = 0
    let offset = blocks.length * blockSize
    while (segment < shape.segments.length && offset >= (shape.segments[segment] as Segment)[1]) {
      offset -= (shape.segments[segment] as Segment)[1]
      segment++
    }
    for (let block = blocks.length; block < Math.floor(total / blockSize); block++) {
      // The pieces of segments this block covers.
      let need = blockSize
      let key = `${parent}`
      while (need > 0) {
        const [name, len] = shape.segments[segment] as Segment
        const take = Math.min(len - offset, need)
        if (take > 0) key += `|${name}@${offset}+${take}`
        offset += take
        need -= take
        if (offset >= len) {
          segment++
          offset = 0
        }
      }
      let id = ids.get(key)
      if (id === undefined) {
        id = hits.length
        ids.set(key, id)
        hits.push(0)
        lastSeen.push(undefined)
        stillShared = false
      } else if (stillShared) {
        shared += blockSize
      }
      visit(id)
      parent = id
    }
    if (shape.conversation !== undefined) previousRound.set(shape.conversation, { segments: shape.segments, blocks })
    fractions.push(total > 0 ? shared / total : 0)
  }
  return {
    blockSize,
    sharingFraction: describe(fractions),
    blockReuseRate: hits.length > 0 ? hits.filter((h) => h > 1).length / hits.length : 0,
    distinctBlocks: hits.length,
    blockHits: describe(hits),
    reuseGapSec: describe(gaps),
  }
}

/** Is `prefix` the start of `segments`, segment by segment? */
function isPrefix(prefix: readonly Segment[], segments: readonly Segment[]): boolean {
  if (prefix.length > segments.length) return false
  for (let i = 0; i < prefix.length; i++) {
    const a = prefix[i] as Segment
    const b = segments[i] as Segment
    if (a[0] !== b[0] || a[1] !== b[1]) return false
  }
  return true
}

export function analyzeWorkload(workload: Workload, options: AnalyzeOptions = {}): WorkloadAnalysis {
  const analysis = describeWorkload(workload, options.blockSizes ?? [8, 16, 32])
  if (options.conversationKv !== undefined && hasConversations(workload)) {
    const trace = buildKvAccessTrace(workload, options.conversationKv.closedLoop)
    analysis.conversationKv = analyzeConversationKv(trace, options.conversationKv)
  }
  return analysis
}

function describeWorkload(workload: Workload, blockSizes: readonly number[]): WorkloadAnalysis {
  if (workload.kind === 'conversations') {
    const turns = workload.conversations.flatMap((c) => c.turns.map((t) => ({ c, t })))
    const shapes = conversationShapes(workload.conversations, workload.commonPrefixTokens)
    const perUser = new Map<string, number>()
    for (const { c } of turns) perUser.set(c.user ?? 'anonymous', (perUser.get(c.user ?? 'anonymous') ?? 0) + 1)
    return {
      format: workload.format,
      requests: turns.length,
      skippedRows: workload.skipped.length,
      users: userFigures(perUser, turns.length),
      conversations: {
        count: workload.conversations.length,
        rounds: describe(workload.conversations.map((c) => c.turns.length)),
      },
      inputTokens: describe(turns.map(({ t }) => t.userTokens)),
      promptTokens: describe(shapes.map((s) => s.segments.reduce((n, [, len]) => n + len, 0))),
      outputTokens: describe(turns.map(({ t }) => t.outputTokens)),
      prefixSharing: blockSizes.map((b) => prefixSharing(shapes.slice(0, PREFIX_SHARING_MAX_REQUESTS), b)),
      ...(shapes.length > PREFIX_SHARING_MAX_REQUESTS ? { prefixSharingRequests: PREFIX_SHARING_MAX_REQUESTS } : {}),
    }
  }
  const requests = workload.requests
  const durationSec = requests.length > 0 ? (requests[requests.length - 1] as TraceRequest).arrivalMs / 1000 : 0
  const perUser = new Map<string, number>()
  for (const r of requests) perUser.set(r.user ?? 'anonymous', (perUser.get(r.user ?? 'anonymous') ?? 0) + 1)
  const withShapes = requests.some((r) => r.conversationId !== undefined || r.hashIds !== undefined)
  const shapes = withShapes ? traceShapes(requests.slice(0, PREFIX_SHARING_MAX_REQUESTS)) : []
  const out: WorkloadAnalysis = {
    format: workload.format,
    requests: requests.length,
    skippedRows: workload.skipped.length,
    durationSec,
    rate: rateOverTime(requests, durationSec),
    users: userFigures(perUser, requests.length),
    inputTokens: describe(requests.map((r) => r.inputTokens)),
    promptTokens: describe(tracePromptLengths(requests)),
    outputTokens: describe(requests.map((r) => r.outputTokens)),
  }
  const conversations = new Map<string, number[]>()
  for (const r of requests) {
    if (r.conversationId === undefined) continue
    const times = conversations.get(r.conversationId) ?? []
    times.push(r.arrivalMs / 1000)
    conversations.set(r.conversationId, times)
  }
  if (conversations.size > 0) {
    const lists = [...conversations.values()]
    out.conversations = {
      count: lists.length,
      rounds: describe(lists.map((t) => t.length)),
      durationSec: describe(lists.map((t) => Math.max(...t) - Math.min(...t))),
    }
  }
  if (conversations.size > 0 || requests.some((r) => r.hashIds !== undefined)) {
    out.prefixSharing = blockSizes.map((b) => prefixSharing(shapes, b))
    if (requests.length > shapes.length) out.prefixSharingRequests = shapes.length
  }
  return out
}

function userFigures(perUser: Map<string, number>, total: number): WorkloadAnalysis['users'] {
  const ranked = [...perUser.entries()].sort((a, b) => b[1] - a[1])
  const zipf = fitZipf(ranked.map(([, n]) => n))
  return {
    count: ranked.length,
    top: ranked.slice(0, 10).map(([user, requests]) => ({ user, requests, share: total > 0 ? requests / total : 0 })),
    ...(zipf !== undefined ? { zipf } : {}),
  }
}

/** Requests per second in buckets sized so that a long trace gives at most ~100 of them. */
function rateOverTime(requests: readonly TraceRequest[], durationSec: number): NonNullable<WorkloadAnalysis['rate']> {
  const steps = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 600, 1800, 3600, 21600, 86400]
  const bucketSec = steps.find((s) => durationSec / s <= 100) ?? 86400
  const buckets = new Array<number>(Math.max(1, Math.floor(durationSec / bucketSec) + 1)).fill(0)
  for (const r of requests) {
    const b = Math.floor(r.arrivalMs / 1000 / bucketSec)
    buckets[b] = (buckets[b] ?? 0) + 1
  }
  const rps = buckets.map((n) => n / bucketSec)
  return { bucketSec, requestsPerSec: rps, describe: describe(rps), peak: Math.max(...rps), mean: mean(rps) }
}

const SPARKS = '▁▂▃▄▅▆▇█'

/** A one-line chart of a series, for the terminal. */
export function sparkline(values: readonly number[]): string {
  const max = Math.max(...values, 0)
  return values.map((v) => SPARKS[max > 0 ? Math.min(7, Math.floor((v / max) * 7.999)) : 0]).join('')
}

const f = (v: number | undefined, digits = 2): string =>
  v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits)

function describeRows(rows: [string, Description][]): string {
  const columns = Object.keys(rows[0]?.[1] ?? {})
  return textTable(
    ['', ...columns],
    rows.map(([name, d]) => [name, ...columns.map((c) => f(d[c], c === 'count' ? 0 : 2))]),
  )
}

export function formatAnalysis(a: WorkloadAnalysis): string {
  const lines: string[] = []
  lines.push(
    `format = ${a.format}  requests = ${a.requests}${a.skippedRows ? `  skipped_rows = ${a.skippedRows}` : ''}` +
      (a.durationSec !== undefined ? `  duration_sec = ${f(a.durationSec, 1)}` : ''),
  )
  if (a.rate) {
    lines.push(
      `request rate (per ${a.rate.bucketSec} s bucket): mean ${f(a.rate.mean)} rps, peak ${f(a.rate.peak)} rps`,
    )
    lines.push(`  ${sparkline(a.rate.requestsPerSec)}`)
  }
  lines.push(
    `users = ${a.users.count}${a.users.zipf ? `  zipf fit: alpha = ${f(a.users.zipf.alpha, 3)} (R² ${f(a.users.zipf.rSquared, 3)})` : ''}`,
  )
  lines.push(
    textTable(
      ['user', 'requests', 'share'],
      a.users.top.map((u) => [u.user, String(u.requests), `${f(u.share * 100, 1)}%`]),
    ),
  )
  const rows: [string, Description][] = [
    ['input_tokens', a.inputTokens],
    ['prompt_tokens', a.promptTokens],
    ['output_tokens', a.outputTokens],
  ]
  if (a.conversations) {
    lines.push(`conversations = ${a.conversations.count}`)
    rows.push(['conversation_rounds', a.conversations.rounds])
    if (a.conversations.durationSec) rows.push(['conversation_sec', a.conversations.durationSec])
  }
  lines.push(describeRows(rows))
  if (a.prefixSharing) {
    lines.push(
      `prefix sharing (unbounded cache, full blocks${a.prefixSharingRequests ? `, first ${a.prefixSharingRequests} requests` : ''}):`,
    )
    lines.push(
      textTable(
        [
          'block_size',
          'sharing_mean',
          'sharing_p50',
          'block_reuse_rate',
          'distinct_blocks',
          'hits_mean',
          'hits_max',
          'reuse_gap_mean_s',
          'reuse_gap_p50_s',
        ],
        a.prefixSharing.map((p) => [
          String(p.blockSize),
          `${f((p.sharingFraction['mean'] ?? 0) * 100, 1)}%`,
          `${f((p.sharingFraction['50%'] ?? 0) * 100, 1)}%`,
          `${f(p.blockReuseRate * 100, 1)}%`,
          String(p.distinctBlocks),
          f(p.blockHits['mean']),
          f(p.blockHits['max'], 0),
          f(p.reuseGapSec['mean'], 3),
          f(p.reuseGapSec['50%'], 3),
        ]),
      ),
    )
  }
  if (a.conversationKv) lines.push(formatConversationKv(a.conversationKv))
  return lines.join('\n')
}
