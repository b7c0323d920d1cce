import { Agent, request as undiciRequest } from 'undici'
import type { Clock, Random } from '../core/index.js'
import { createSeededRandom } from '../core/index.js'
import type { ChatMessage, TokenCounter } from '../tokens/index.js'
import type { ChatOutcome } from './client.js'
import { sendChat } from './client.js'
import { sampleGamma } from './distributions.js'
import { assistantMessage, hashBlockText, seedFor, syntheticText, userContentTokens, userMessage } from './prompts.js'
import type { Conversation, TraceRequest } from './workload.js'

/** How one request ended: exactly one of these per request sent, so nothing disappears from the figures. */
export type RequestOutcome = 'completed' | 'rejected' | 'failed'

/** One request as measured; the per-request export is a list of these. */
export interface RequestRecord {
  index: number
  user: string
  conversationId?: string
  round?: number
  /** When the workload asked for it, ms after the run started (open-loop), or when the client sent it. */
  scheduledMs: number
  /** First attempt sent, and the final answer's end, ms after the run started. */
  startMs: number
  endMs: number
  outcome: RequestOutcome
  /** HTTP status of the final attempt (0 for a connection failure). */
  status: number
  rejectReason?: string
  error?: string
  attempts: number
  /** 429 answers received for this request, retried or not, with their times (ms after the run started). */
  rejectionsMs: number[]
  ttftMs?: number
  latencyMs?: number
  tpotMs?: number
  /** Messages in the request (vLLM's `input_num_turns`). */
  inputNumTurns: number
  inputNumTokens: number
  /** Completion tokens asked for. */
  requestedOutputTokens: number
  outputNumTokens?: number
  outputNumChunks?: number
}

export interface RunOptions {
  baseUrl: string
  model?: string
  counter: TokenCounter
  clock: Clock
  seed: number
  userHeader?: string
  /** Retry a 429 after its retry-after (at most `maxRetries` times). */
  retry429?: boolean
  maxRetries?: number
  requestTimeoutMs?: number
  /** Stop sending new requests after this long (ms); requests in flight finish. */
  durationMs?: number
  maxNumRequests?: number
  /** Called once per finished request (progress bar, live timelines). */
  onRecord?: (record: RequestRecord) => void
  /** Called once with the number of requests the run expects, when known. */
  onTotal?: (total: number) => void
}

export interface RunResult {
  records: RequestRecord[]
  /** Wall-clock start (epoch ms) and length of the run. */
  startedAtWallMs: number
  runtimeMs: number
  model: string
}

/** Default user when neither the workload nor a Zipf labelling names one. */
export const DEFAULT_USER = 'anonymous'
/** 10 minutes: a request still silent after this is failed rather than waited for. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 600_000
/** Retries of one request after 429s, when `--retry-429` is on. */
export const DEFAULT_MAX_RETRIES = 5
/** SDK clients ignore retry-after above 60 s; so do we, capping the wait. */
const MAX_RETRY_WAIT_MS = 60_000

/** The model to name in requests: `--model`, else the first of the server's `/v1/models`. */
export async function resolveModel(baseUrl: string, dispatcher: Agent, model?: string): Promise<string> {
  if (model !== undefined) return model
  try {
    const res = await undiciRequest(`${baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/models`, { dispatcher })
    const body = (await res.body.json()) as { data?: { id?: string }[] }
    return body.data?.[0]?.id ?? 'default'
  } catch {
    return 'default'
  }
}

/**
 * Shared by both modes: one request, retried after 429s when asked, turned into a record.
 */
class RequestSender {
  readonly #options: RunOptions
  readonly #agent: Agent
  readonly #origin: number
  #model = 'default'
  #nextIndex = 0
  readonly records: RequestRecord[] = []

  constructor(options: RunOptions, agent: Agent, origin: number) {
    this.#options = options
    this.#agent = agent
    this.#origin = origin
  }

  set model(model: string) {
    this.#model = model
  }

  elapsed(): number {
    return this.#options.clock.now() - this.#origin
  }

  async send(
    messages: ChatMessage[],
    outputTokens: number,
    user: string,
    scheduledMs: number,
    extra: { conversationId?: string; round?: number },
  ): Promise<{ record: RequestRecord; outcome: ChatOutcome }> {
    const o = this.#options
    const index = this.#nextIndex++
    const startMs = this.elapsed()
    const rejectionsMs: number[] = []
    let attempts = 0
    let outcome: ChatOutcome
    for (;;) {
      attempts++
      outcome = await sendChat({
        baseUrl: o.baseUrl,
        model: this.#model,
        messages,
        outputTokens,
        user,
        userHeader: o.userHeader ?? 'x-user-id',
        dispatcher: this.#agent,
        clock: o.clock,
        counter: o.counter,
        timeoutMs: o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      })
      if (outcome.kind !== 'rejected') break
      rejectionsMs.push(this.elapsed())
      if (!o.retry429 || !outcome.shouldRetry || attempts > (o.maxRetries ?? DEFAULT_MAX_RETRIES)) break
      const waitMs = Math.min(MAX_RETRY_WAIT_MS, outcome.retryAfterMs ?? 1000)
      await new Promise<void>((resolve) => o.clock.setTimeout(resolve, waitMs))
    }
    const endMs = this.elapsed()
    const record: RequestRecord = {
      index,
      user,
      ...extra,
      scheduledMs,
      startMs,
      endMs,
      outcome: outcome.kind,
      status: outcome.kind === 'completed' ? 200 : outcome.status,
      attempts,
      rejectionsMs,
      inputNumTurns: messages.length,
      inputNumTokens: o.counter.countChat(messages),
      requestedOutputTokens: Math.max(1, outputTokens), // a trace row of 0 is sent as 1 (vLLM needs ≥ 1)
    }
    if (outcome.kind === 'rejected') record.rejectReason = outcome.reason
    if (outcome.kind === 'failed') record.error = outcome.message
    if (outcome.kind === 'completed') {
      // A retried request's TTFT and latency count from its first attempt: the wait is what the user saw.
      const retryWaitMs = endMs - startMs - outcome.latencyMs
      record.ttftMs = outcome.ttftMs + retryWaitMs
      record.latencyMs = outcome.latencyMs + retryWaitMs
      record.outputNumTokens = outcome.outputTokens
      record.outputNumChunks = outcome.chunks
      // vLLM: tpot = (latency − ttft) / (output_tokens − 1); 0.0 for a single token (its multi-turn bench
      // keeps such a request in the tpot column with 0 rather than leaving it out).
      record.tpotMs = outcome.outputTokens > 1 ? (outcome.latencyMs - outcome.ttftMs) / (outcome.outputTokens - 1) : 0
    }
    this.records.push(record)
    o.onRecord?.(record)
    return { record, outcome }
  }
}

function createAgent(connections: number): Agent {
  // One pool for the whole run; open-loop replay can have every request of a burst in flight at once.
  return new Agent({ connections, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 })
}

/** History of one conversation in a replayed trace: per round, the user turn and the answer once known. */
interface RoundHistory {
  user: string
  answer?: string
  outputTokens: number
}

/**
 * Open-loop replay: each request is sent at its arrival time whatever is still in flight, as the trace's
 * users sent them. Rounds of a conversation carry the earlier rounds as history: the real answer when it
 * has arrived, else text of the recorded answer length, so the prompt length is the trace's either way.
 */
export async function runTrace(requests: readonly TraceRequest[], options: RunOptions): Promise<RunResult> {
  const agent = createAgent(1024)
  const startedAtWallMs = options.clock.wallNow()
  try {
    const model = await resolveModel(options.baseUrl, agent, options.model)
    let schedule = [...requests]
    if (options.maxNumRequests !== undefined) schedule = schedule.slice(0, options.maxNumRequests)
    if (options.durationMs !== undefined)
      schedule = schedule.filter((r) => r.arrivalMs <= (options.durationMs as number))
    options.onTotal?.(schedule.length)
    const origin = options.clock.now()
    const sender = new RequestSender(options, agent, origin)
    sender.model = model
    const histories = new Map<string, RoundHistory[]>()

    const sendOne = async (request: TraceRequest, position: number): Promise<void> => {
      const user = request.user ?? DEFAULT_USER
      let messages: ChatMessage[]
      if (request.conversationId !== undefined) {
        const history = histories.get(request.conversationId) ?? []
        histories.set(request.conversationId, history)
        const round = request.round ?? history.length
        messages = []
        for (let r = 0; r < round; r++) {
          const past = history[r]
          if (past === undefined) continue // a round cut from the trace: its turn is simply absent
          messages.push(userMessage(past.user))
          messages.push(
            assistantMessage(
              past.answer ?? syntheticText(past.outputTokens, options.seed, request.conversationId, r, 'answer'),
            ),
          )
        }
        const content = syntheticText(
          userContentTokens(request.inputTokens),
          options.seed,
          request.conversationId,
          round,
          'user',
        )
        messages.push(userMessage(content))
        history[round] = { user: content, outputTokens: request.outputTokens }
      } else if (request.hashIds !== undefined) {
        messages = [userMessage(hashBlockText(userContentTokens(request.inputTokens), request.hashIds))]
      } else {
        messages = [
          userMessage(syntheticText(userContentTokens(request.inputTokens), options.seed, 'request', position)),
        ]
      }
      const { outcome } = await sender.send(messages, request.outputTokens, user, request.arrivalMs, {
        ...(request.conversationId !== undefined ? { conversationId: request.conversationId } : {}),
        ...(request.round !== undefined ? { round: request.round } : {}),
      })
      if (outcome.kind === 'completed' && request.conversationId !== undefined) {
        const entry = histories.get(request.conversationId)?.[request.round ?? 0]
        if (entry !== undefined) entry.answer = outcome.text
      }
    }

    const inFlight: Promise<void>[] = []
    await new Promise<void>((resolve) => {
      let next = 0
      const tick = (): void => {
        // Send everything due now, then sleep until the next arrival.
        while (next < schedule.length && (schedule[next] as TraceRequest).arrivalMs <= sender.elapsed()) {
          inFlight.push(sendOne(schedule[next] as TraceRequest, next))
          next++
        }
        if (next >= schedule.length) {
          resolve()
          return
        }
        options.clock.setTimeout(tick, Math.max(0, (schedule[next] as TraceRequest).arrivalMs - sender.elapsed()))
      }
      tick()
    })
    await Promise.all(inFlight)
    return { records: sender.records, startedAtWallMs, runtimeMs: sender.elapsed(), model }
  } finally {
    await agent.close()
  }
}

export interface ConversationRunOptions extends RunOptions {
  /** Concurrent clients, each sending one request at a time (vLLM's `--num-clients`). */
  numClients: number
  /** Conversations open at once across all clients (vLLM's `--max-active-conversations`). */
  maxActiveConversations?: number
  /** Per-client Poisson rate of requests (vLLM's `--request-rate`); none = back to back. */
  requestRate?: number
  /** Tokens every conversation's first turn starts with. */
  commonPrefixTokens?: number
}

interface ActiveConversation {
  conversation: Conversation
  messages: ChatMessage[]
  nextTurn: number
  user: string
}

/**
 * Closed-loop conversations as vLLM's multi-turn bench runs them: each client keeps up to its share of
 * `max_active_conversations` open, sends the next turn of one of them (round robin), waits for the whole
 * answer, appends it to that conversation's history and goes on. A conversation whose turn was rejected or
 * failed is closed (its later turns would need the missing answer) and counted as abandoned.
 */
export async function runConversations(
  conversations: readonly Conversation[],
  options: ConversationRunOptions,
): Promise<RunResult & { abandonedConversations: number }> {
  const agent = createAgent(Math.max(16, options.numClients * 2))
  const startedAtWallMs = options.clock.wallNow()
  try {
    const model = await resolveModel(options.baseUrl, agent, options.model)
    const totalTurns = conversations.reduce((n, c) => n + c.turns.length, 0)
    options.onTotal?.(Math.min(totalTurns, options.maxNumRequests ?? totalTurns))
    const origin = options.clock.now()
    const sender = new RequestSender(options, agent, origin)
    sender.model = model
    const queue = [...conversations]
    const perClient = Math.max(
      1,
      Math.floor((options.maxActiveConversations ?? options.numClients) / options.numClients),
    )
    const commonPrefix = syntheticText(options.commonPrefixTokens ?? 0, options.seed, 'common-prefix')
    let sent = 0
    let abandoned = 0
    const stopSending = (): boolean =>
      (options.maxNumRequests !== undefined && sent >= options.maxNumRequests) ||
      (options.durationMs !== undefined && sender.elapsed() >= options.durationMs)

    const client = async (random: Random): Promise<void> => {
      const active: ActiveConversation[] = []
      let turnPointer = 0
      for (;;) {
        while (active.length < perClient && queue.length > 0) {
          const conversation = queue.shift() as Conversation
          active.push({ conversation, messages: [], nextTurn: 0, user: conversation.user ?? DEFAULT_USER })
        }
        if (active.length === 0 || stopSending()) return
        turnPointer %= active.length
        const current = active[turnPointer] as ActiveConversation
        const turn = current.conversation.turns[current.nextTurn]
        if (turn === undefined) {
          active.splice(turnPointer, 1)
          continue
        }
        let content =
          turn.userText ??
          syntheticText(turn.userTokens, options.seed, current.conversation.id, current.nextTurn, 'user')
        if (current.nextTurn === 0) {
          content =
            commonPrefix +
            syntheticText(current.conversation.prefixTokens, options.seed, current.conversation.id, 'prefix') +
            content
        }
        current.messages.push(userMessage(content))
        sent++
        const { outcome } = await sender.send(
          [...current.messages],
          turn.outputTokens,
          current.user,
          sender.elapsed(),
          {
            conversationId: current.conversation.id,
            round: current.nextTurn,
          },
        )
        if (outcome.kind === 'completed') {
          current.messages.push(assistantMessage(outcome.text))
          current.nextTurn++
          if (current.nextTurn >= current.conversation.turns.length) active.splice(turnPointer, 1)
          else turnPointer++
        } else {
          abandoned++
          active.splice(turnPointer, 1)
        }
        if (options.requestRate !== undefined && options.requestRate > 0) {
          const gapMs = sampleGamma(random, 1, 1 / options.requestRate) * 1000
          await new Promise<void>((resolve) => options.clock.setTimeout(resolve, gapMs))
        }
      }
    }
    await Promise.all(
      Array.from({ length: options.numClients }, (_, i) =>
        client(createSeededRandom(seedFor(options.seed, 'client', i))),
      ),
    )
    return {
      records: sender.records,
      startedAtWallMs,
      runtimeMs: sender.elapsed(),
      model,
      abandonedConversations: abandoned,
    }
  } finally {
    await agent.close()
  }
}
