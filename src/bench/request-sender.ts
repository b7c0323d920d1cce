import PQueue from 'p-queue'
import type { Agent } from 'undici'
import type { ChatMessage } from '../tokens/index.js'
import type { ChatOutcome } from './client.js'
import { sendChat } from './client.js'
import type { LegacyRandom } from './mt19937.js'
import { createNumpyRandomState } from './mt19937.js'
import type { RequestRecord, RunOptions } from './runner.js'
import { DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT_MS, sleep } from './runner.js'

/** SDK clients ignore retry-after above 60 s; so do we, capping the wait. */
const MAX_RETRY_WAIT_MS = 60_000
/** Without a retry-after header, `--on-429 retry-after` waits this long (ms). */
const DEFAULT_RETRY_WAIT_MS = 1_000
/**
 * vLLM's multi-turn client (`exponential_backoff_sleep`): base 1 s, doubling per attempt, ±10% jitter drawn
 * with `np.random.uniform`; it reads no retry-after.
 */
const VLLM_BACKOFF_BASE_MS = 1_000
const VLLM_BACKOFF_FACTOR = 2
const VLLM_BACKOFF_JITTER = 0.1

/** How long to wait before the next attempt after the `attempt`-th 429 (0-based), or undefined to give up. */
export function retryDelayMs(
  options: Pick<RunOptions, 'on429' | 'retry429' | 'maxRetries'>,
  outcome: Extract<ChatOutcome, { kind: 'rejected' }>,
  attempt: number,
  random: LegacyRandom,
): number | undefined {
  const policy = options.on429 ?? (options.retry429 === true ? 'retry-after' : 'drop')
  if (policy === 'drop' || attempt >= (options.maxRetries ?? DEFAULT_MAX_RETRIES)) return undefined
  if (policy === 'retry-after') {
    if (!outcome.shouldRetry) return undefined
    return Math.min(MAX_RETRY_WAIT_MS, outcome.retryAfterMs ?? DEFAULT_RETRY_WAIT_MS)
  }
  const jitter = -VLLM_BACKOFF_JITTER + 2 * VLLM_BACKOFF_JITTER * random.next()
  return VLLM_BACKOFF_BASE_MS * VLLM_BACKOFF_FACTOR ** attempt * (1 + jitter)
}

/**
 * Shared by both modes: one request, retried after 429s as `--on-429` says, turned into a record. With
 * `maxConcurrency`, every attempt waits for a free slot first (a p-queue of that concurrency, as `vllm bench
 * serve --max-concurrency` holds a semaphore); time spent waiting for the slot is not the server's, so the
 * record's start is when the request went out.
 */
export class RequestSender {
  readonly #options: RunOptions
  readonly #agent: Agent
  readonly #origin: number
  readonly #slots: PQueue | undefined
  /** Backoff jitter for requests that bring no generator of their own (open loop). */
  readonly #random: LegacyRandom
  #model = 'default'
  #nextIndex = 0
  readonly records: RequestRecord[] = []

  constructor(options: RunOptions, agent: Agent, origin: number) {
    this.#options = options
    this.#agent = agent
    this.#origin = origin
    this.#random = createNumpyRandomState(options.seed >>> 0)
    this.#slots = options.maxConcurrency !== undefined ? new PQueue({ concurrency: options.maxConcurrency }) : undefined
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
    random: LegacyRandom = this.#random,
  ): Promise<{ record: RequestRecord; outcome: ChatOutcome }> {
    const o = this.#options
    const index = this.#nextIndex++
    let startMs: number | undefined
    let lastStartMs = 0
    const rejectionsMs: number[] = []
    let attempts = 0
    let outcome: ChatOutcome
    const attempt = async (): Promise<ChatOutcome> => {
      lastStartMs = this.elapsed()
      startMs ??= lastStartMs
      return sendChat({
        baseUrl: o.baseUrl,
        model: this.#model,
        messages,
        outputTokens,
        ...(o.clientMaxTokens !== undefined ? { maxTokens: o.clientMaxTokens } : {}),
        user,
        userHeader: o.userHeader ?? 'x-user-id',
        ...(o.headers !== undefined ? { headers: o.headers } : {}),
        ...(o.outputHintHeader !== undefined ? { outputHintHeader: o.outputHintHeader } : {}),
        dispatcher: this.#agent,
        clock: o.clock,
        counter: o.counter,
        timeoutMs: o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      })
    }
    for (;;) {
      attempts++
      outcome = this.#slots !== undefined ? await this.#slots.add(attempt) : await attempt()
      if (outcome.kind !== 'rejected') break
      rejectionsMs.push(this.elapsed())
      const waitMs = retryDelayMs(o, outcome, attempts - 1, random)
      if (waitMs === undefined) break
      await sleep(o.clock, waitMs)
    }
    const endMs = this.elapsed()
    const first = startMs ?? endMs
    const record: RequestRecord = {
      index,
      user,
      ...extra,
      scheduledMs,
      startMs: first,
      endMs,
      outcome: outcome.kind,
      status: outcome.kind === 'completed' ? 200 : outcome.status,
      attempts,
      rejectionsMs,
      inputNumTurns: messages.length,
      inputNumTokens:
        outcome.kind === 'completed' && outcome.promptTokens !== undefined
          ? outcome.promptTokens
          : o.counter.countChat(messages),
      inputNumTokensSource: outcome.kind === 'completed' && outcome.promptTokens !== undefined ? 'server' : 'estimate',
      // vLLM's client: the tokens of each message's content, summed; no role markers.
      inputContentTokens: messages.reduce(
        (n, m) => n + o.counter.count(typeof m.content === 'string' ? m.content : ''),
        0,
      ),
      requestedOutputTokens: Math.max(1, outputTokens), // a trace row of 0 is sent as 1 (vLLM needs ≥ 1)
    }
    if (outcome.kind === 'rejected') record.rejectReason = outcome.reason
    if (outcome.kind === 'failed') record.error = outcome.message
    if (outcome.kind === 'completed') {
      // A retried request's TTFT and latency count from its first attempt: the wait is what the user saw.
      const retryWaitMs = lastStartMs - first
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
