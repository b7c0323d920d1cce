import type { Dispatcher } from 'undici'
import { request } from 'undici'
import { createSseParser, type Clock } from '../core/index.js'
import type { ChatMessage, TokenCounter } from '../tokens/index.js'

/**
 * One streamed chat completion, timed as vLLM's benchmarks time it: TTFT is the first chunk with non-empty
 * content, latency ends at `data: [DONE]`. Every call ends in exactly one outcome; nothing throws.
 */
export interface ChatCall {
  baseUrl: string
  model: string
  messages: readonly ChatMessage[]
  /** The answer's true length (the trace's or conversation's). How it reaches the server: `maxTokens`. */
  outputTokens: number
  /** How the client sets `max_tokens`; `exact` when not given. */
  maxTokens?: ClientMaxTokens
  user: string
  userHeader: string
  /** Extra headers (authorization, `--header`); the user header wins over one of the same name. */
  headers?: Readonly<Record<string, string>>
  /**
   * Send the true length in this header too (kvgate's `x-kvgate-output-tokens`): the oracle's client, whose
   * gateway trusts it, so admission reserves exactly what the answer will need.
   */
  outputHintHeader?: string
  dispatcher: Dispatcher
  clock: Clock
  counter: TokenCounter
  /** Give up on a request (no headers or no chunk) after this long. */
  timeoutMs: number
}

export type ChatOutcome =
  | {
      kind: 'completed'
      ttftMs: number
      latencyMs: number
      text: string
      outputTokens: number
      /** Content chunks after the first, as vLLM's multi-turn bench counts `output_num_chunks`. */
      chunks: number
      promptTokens?: number
    }
  | { kind: 'rejected'; status: number; reason: string; retryAfterMs?: number; shouldRetry: boolean; message: string }
  | { kind: 'failed'; status: number; message: string }

/**
 * How a client sets `max_tokens`:
 * - `exact`: `max_tokens = min_tokens =` the true length with `ignore_eos`, so every server ends the answer
 *   there (the bench's old and flattering habit: a gateway's predictor sees the answer's length up front);
 * - `none`: no `max_tokens`, as chat UIs and agents send; the true length goes out of band to the emulator;
 * - a number: `max_tokens` fixed at it (a generous client, e.g. 4096), the true length out of band as well.
 * Out of band is the body field `vllm_xargs: {kvgate_sim_output_tokens: N}`: only `kvgate sim` reads it (it ends
 * the answer there with `finish_reason: stop`, or at `max_tokens` with `length` if that is smaller); vLLM accepts
 * `vllm_xargs` as extension arguments and ignores this one, and kvgate forwards the body untouched.
 */
export type ClientMaxTokens = 'exact' | 'none' | number
export const SIM_OUTPUT_TOKENS_FIELD = 'kvgate_sim_output_tokens'

/** The JSON body of one streamed chat completion. */
export function chatRequestBody(call: Pick<ChatCall, 'model' | 'messages' | 'outputTokens' | 'maxTokens'>): string {
  const length = Math.max(1, call.outputTokens) // a trace row of 0 is sent as 1 (vLLM needs ≥ 1)
  const mode = call.maxTokens ?? 'exact'
  const limits =
    mode === 'exact'
      ? { max_tokens: length, min_tokens: length, ignore_eos: true }
      : {
          ...(mode === 'none' ? {} : { max_tokens: mode }),
          vllm_xargs: { [SIM_OUTPUT_TOKENS_FIELD]: length },
        }
  return JSON.stringify({
    model: call.model,
    messages: call.messages,
    ...limits,
    stream: true,
    stream_options: { include_usage: true },
  })
}

/** A connection error in words: "connection refused" rather than only a code. */
export function describeConnectionError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } }
  const code = e.code ?? e.cause?.code
  const message = e.message ?? String(err)
  const plain: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ECONNRESET: 'connection reset',
    ENOTFOUND: 'host not found',
    EHOSTUNREACH: 'host unreachable',
    ETIMEDOUT: 'connection timed out',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  }
  const words = code !== undefined ? plain[code] : undefined
  return words !== undefined ? `${words} (${message})` : message
}

/** `{base}/v1/chat/completions`, accepting a base that already ends in `/v1`. */
export function chatCompletionsUrl(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/chat/completions`
}

/** Seconds or milliseconds from `retry-after-ms` / `retry-after` (seconds or an HTTP date). */
export function retryAfterMs(
  headers: Record<string, string | string[] | undefined>,
  nowWallMs = Date.now(),
): number | undefined {
  const header = (name: string) => {
    const v = headers[name]
    return Array.isArray(v) ? v[0] : v
  }
  const ms = Number(header('retry-after-ms'))
  if (header('retry-after-ms') !== undefined && Number.isFinite(ms) && ms >= 0) return ms
  const after = header('retry-after')
  if (after === undefined) return undefined
  const seconds = Number(after)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(after)
  return Number.isFinite(date) ? Math.max(0, date - nowWallMs) : undefined
}

function errorMessage(bodyText: string): string {
  try {
    const body = JSON.parse(bodyText) as { error?: { message?: string; code?: string }; message?: string }
    return body.error?.message ?? body.message ?? bodyText.slice(0, 300)
  } catch {
    return bodyText.slice(0, 300)
  }
}

export async function sendChat(call: ChatCall): Promise<ChatOutcome> {
  const started = call.clock.now()
  const body = chatRequestBody(call)
  let response: Dispatcher.ResponseData
  try {
    response = await request(chatCompletionsUrl(call.baseUrl), {
      method: 'POST',
      dispatcher: call.dispatcher,
      headers: {
        ...call.headers,
        'content-type': 'application/json',
        ...(call.outputHintHeader === undefined
          ? {}
          : { [call.outputHintHeader]: String(Math.max(1, call.outputTokens)) }),
        [call.userHeader]: call.user,
      },
      body,
      headersTimeout: call.timeoutMs,
      bodyTimeout: call.timeoutMs,
    })
  } catch (err) {
    return { kind: 'failed', status: 0, message: `request failed: ${describeConnectionError(err)}` }
  }
  if (response.statusCode !== 200) {
    let text = ''
    try {
      text = await response.body.text()
    } catch {
      // the status is the outcome; a body we cannot read only loses the message
    }
    if (response.statusCode === 429) {
      const reason = response.headers['x-kvgate-reject-reason']
      const retryAfter = retryAfterMs(response.headers)
      return {
        kind: 'rejected',
        status: 429,
        reason: (Array.isArray(reason) ? reason[0] : reason) ?? 'unspecified',
        ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
        shouldRetry: response.headers['x-should-retry'] !== 'false',
        message: errorMessage(text),
      }
    }
    return { kind: 'failed', status: response.statusCode, message: errorMessage(text) }
  }

  let ttftMs: number | undefined
  let text = ''
  let contentChunks = 0
  let usageCompletion: number | undefined
  let usagePrompt: number | undefined
  let done = false
  // vLLM's clients stop the latency clock at `data: [DONE]`, not when the connection's body ends.
  let doneAtMs: number | undefined
  let streamError: string | undefined
  const onData = (data: string): void => {
    if (data === '[DONE]') {
      done = true
      doneAtMs ??= call.clock.now()
      return
    }
    let chunk: {
      choices?: { delta?: { content?: string | null }; text?: string | null }[]
      usage?: { completion_tokens?: number; prompt_tokens?: number } | null
      error?: { message?: string }
    }
    try {
      chunk = JSON.parse(data)
    } catch {
      streamError = `unparseable chunk: ${data.slice(0, 100)}`
      return
    }
    if (chunk.error) {
      streamError = chunk.error.message ?? 'error in stream'
      return
    }
    for (const choice of chunk.choices ?? []) {
      const content = choice.delta?.content ?? choice.text ?? ''
      if (content) {
        if (ttftMs === undefined) ttftMs = call.clock.now() - started
        contentChunks++
        text += content
      }
    }
    if (chunk.usage) {
      usageCompletion = chunk.usage.completion_tokens ?? usageCompletion
      usagePrompt = chunk.usage.prompt_tokens ?? usagePrompt
    }
  }
  // The shared parser decodes across chunks, so a multi-byte character split by the network stays whole.
  const parser = createSseParser((data) => {
    if (data.length > 0) onData(data.trim())
  })
  try {
    for await (const piece of response.body) parser.push(piece as Uint8Array)
    parser.end()
  } catch (err) {
    return { kind: 'failed', status: 200, message: `stream broke: ${(err as Error).message}` }
  }
  const latencyMs = (doneAtMs ?? call.clock.now()) - started
  if (streamError !== undefined) return { kind: 'failed', status: 200, message: streamError }
  if (!done) return { kind: 'failed', status: 200, message: 'stream ended without [DONE]' }
  if (ttftMs === undefined) return { kind: 'failed', status: 200, message: 'stream carried no content' }
  return {
    kind: 'completed',
    ttftMs,
    latencyMs,
    text,
    outputTokens: usageCompletion ?? call.counter.count(text),
    chunks: Math.max(0, contentChunks - 1),
    ...(usagePrompt !== undefined ? { promptTokens: usagePrompt } : {}),
  }
}
