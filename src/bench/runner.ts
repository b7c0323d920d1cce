import { Agent, request as undiciRequest } from 'undici'
import type { Clock } from '../core/index.js'
import type { TokenCounter } from '../tokens/index.js'
import type { ClientMaxTokens } from './client.js'
import { describeConnectionError } from './client.js'

/**
 * What both replay modes share: the per-request record, the run options and result, and the server probe.
 * `open-loop.ts` replays traces at their arrival times; `closed-loop.ts` runs conversations as vLLM's multi-turn
 * bench does; `request-sender.ts` sends one request (with its 429 handling) and records it.
 */

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
  /**
   * The prompt as the server counted it (`usage.prompt_tokens`, chat template included), else kvgate's estimate
   * of the same (the chat template through its word-piece counter): `inputNumTokensSource` says which.
   */
  inputNumTokens: number
  inputNumTokensSource?: 'server' | 'estimate'
  /**
   * vLLM's multi-turn client's `input_num_tokens`: every message's content through the tokenizer (kvgate's
   * word-piece counter here), no role markers, no generation prompt. Optional for records built elsewhere.
   */
  inputContentTokens?: number
  /** The answer's true length: what the trace or conversation says it is (the demand). */
  requestedOutputTokens: number
  outputNumTokens?: number
  outputNumChunks?: number
}

/** What a client does with a 429: give up, wait as the server says, or back off as vLLM's multi-turn client. */
export type On429 = 'drop' | 'retry-after' | 'vllm-backoff'
export const ON_429_CHOICES: readonly On429[] = ['drop', 'retry-after', 'vllm-backoff']

export interface RunOptions {
  baseUrl: string
  model?: string
  counter: TokenCounter
  clock: Clock
  seed: number
  userHeader?: string
  /** Extra request headers (`--api-key` as `Authorization: Bearer …`, `--header K:V`). */
  headers?: Readonly<Record<string, string>>
  /** How 429s are handled; `drop` by default. */
  on429?: On429
  /** The older spelling of `on429: 'retry-after'` (`--retry-429`). */
  retry429?: boolean
  /** Retries of one request after 429s (`retry-after`, `vllm-backoff`). */
  maxRetries?: number
  /** How `max_tokens` is set (`exact`, `none` or a fixed number); `exact` by default. */
  clientMaxTokens?: ClientMaxTokens
  /** Tell the gateway each request's true length in this header (the oracle setup of `compare`). */
  outputHintHeader?: string
  /** At most this many requests in flight at once (vllm bench serve's `--max-concurrency`). */
  maxConcurrency?: number
  requestTimeoutMs?: number
  /** Stop sending new requests after this long (ms); requests in flight finish. */
  durationMs?: number
  maxNumRequests?: number
  /** Called once per finished request (progress bar, live timelines). */
  onRecord?: (record: RequestRecord) => void
  /** Called once with the number of requests the run expects, when known (an upper bound in closed loop). */
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
/** Retries of one request after 429s, with `--on-429 retry-after` or `vllm-backoff`. */
export const DEFAULT_MAX_RETRIES = 5

export function createAgent(connections: number): Agent {
  // One pool for the whole run; open-loop replay can have every request of a burst in flight at once.
  return new Agent({ connections, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 })
}

export function baseOrigin(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')
}

/** 10 s for `GET /v1/models` before the run: a server that does not answer it at all is not usable either. */
const PROBE_TIMEOUT_MS = 10_000

/** What `GET /v1/models` said before the run: the first model, or why the server cannot be used. */
export type ServerProbe =
  | { kind: 'ok'; model?: string }
  | { kind: 'unreachable'; message: string }
  | { kind: 'refused'; status: number; message: string }

/**
 * Ask the server for its models before sending anything, so that a dead URL or a missing key stops the run at
 * once with the reason instead of replaying a whole trace into errors. A server without `/v1/models` (some
 * OpenAI-compatible servers) is not an error: the run goes on with the model named `default`.
 */
export async function probeServer(
  baseUrl: string,
  dispatcher: Agent,
  headers: Readonly<Record<string, string>> = {},
): Promise<ServerProbe> {
  try {
    const res = await undiciRequest(`${baseOrigin(baseUrl)}/v1/models`, {
      dispatcher,
      headers: { ...headers },
      headersTimeout: PROBE_TIMEOUT_MS,
      bodyTimeout: PROBE_TIMEOUT_MS,
    })
    const text = await res.body.text()
    if (res.statusCode === 401 || res.statusCode === 403) {
      let message = text.slice(0, 300)
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message
      } catch {
        // not JSON: the text is the message
      }
      return { kind: 'refused', status: res.statusCode, message }
    }
    if (res.statusCode !== 200) return { kind: 'ok' }
    const body = JSON.parse(text) as { data?: { id?: string }[] }
    const model = body.data?.[0]?.id
    return model !== undefined ? { kind: 'ok', model } : { kind: 'ok' }
  } catch (err) {
    if (err instanceof SyntaxError) return { kind: 'ok' }
    return { kind: 'unreachable', message: describeConnectionError(err) }
  }
}

/** The model to name in requests: `--model`, else the first of the server's `/v1/models`, else `default`. */
export async function resolveModel(
  baseUrl: string,
  dispatcher: Agent,
  model?: string,
  headers?: Readonly<Record<string, string>>,
): Promise<string> {
  if (model !== undefined) return model
  const probe = await probeServer(baseUrl, dispatcher, headers)
  return probe.kind === 'ok' ? (probe.model ?? 'default') : 'default'
}

/** A clock-driven sleep (the scaled clock of `--speed` included). */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise<void>((resolve) => clock.setTimeout(resolve, Math.max(0, ms)))
}
