import { createSseParser } from '../core/index.js'

/**
 * Reads an upstream Server-Sent Events stream as it passes, one event at a time: counts completion tokens,
 * notices the first content, the usage chunk and in-stream errors, and decides which events reach the client.
 * Events are passed on as the upstream wrote them (bytes untouched) the moment they are complete; only a
 * partial event at the end of a network chunk waits for the rest of it.
 *
 * Every complete event of one upstream chunk goes out in a single `write()`: a write on an idle client socket
 * is a syscall, and a chunk read from a busy upstream carries several events (profiled: relay CPU per event
 * 4.5 → 2.2 µs with 8 events per chunk, docs/benchmarks.md "Profiling findings", finding 2).
 */
export interface SseUsage {
  readonly promptTokens: number
  readonly completionTokens: number
}

export interface SseRelayOptions {
  /** Drop the usage-only chunk (`choices: []` with `usage`), which the gateway asked for on its own behalf. */
  stripUsageChunk: boolean
  /** Text to send on, in order: every complete event forwarded from one upstream chunk, concatenated. */
  write(text: string): void
  onFirstContent?(): void
  /** `tokens` more completion tokens were streamed. */
  onTokens?(tokens: number): void
}

export interface SseRelay {
  push(chunk: Uint8Array): void
  /** The upstream ended: pass on whatever partial event is left. */
  end(): void
  readonly completionTokens: number
  readonly usage: SseUsage | undefined
  /** The first chunk's `model`: which model the backend says answered. */
  readonly model: string | undefined
  /** The upstream sent an in-stream error event (`data: {"error": …}`). */
  readonly upstreamError: unknown
  readonly sawDone: boolean
  readonly sawContent: boolean
  /** `length` when any choice ended at its max_tokens, else the first finish reason seen. */
  readonly finishReason: string | undefined
}

interface Choice {
  delta?: { content?: unknown; reasoning_content?: unknown; tool_calls?: unknown } | null
  text?: unknown
  finish_reason?: unknown
}

const nonEmpty = (value: unknown): boolean => typeof value === 'string' && value.length > 0

function hasContent(choice: Choice): boolean {
  if (nonEmpty(choice.text)) return true
  const delta = choice.delta
  if (delta === null || delta === undefined) return false
  return nonEmpty(delta.content) || nonEmpty(delta.reasoning_content) || Array.isArray(delta.tool_calls)
}

function readUsage(value: unknown): SseUsage | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const usage = value as { prompt_tokens?: unknown; completion_tokens?: unknown }
  if (typeof usage.completion_tokens !== 'number') return undefined
  return {
    promptTokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0,
    completionTokens: usage.completion_tokens,
  }
}

export function createSseRelay(options: SseRelayOptions): SseRelay {
  let completionTokens = 0
  let usage: SseUsage | undefined
  let model: string | undefined
  let upstreamError: unknown
  let sawDone = false
  let sawContent = false
  let finishReason: string | undefined
  /** The kept events of the chunk being read, written in one go when the chunk is done. */
  let out = ''

  const count = (tokens: number): void => {
    if (tokens <= 0) return
    completionTokens += tokens
    options.onTokens?.(tokens)
  }

  /** Whether the event goes on to the client. */
  const keep = (data: string): boolean => {
    if (data.length === 0) return true
    if (data === '[DONE]') {
      sawDone = true
      return true
    }
    let json: {
      choices?: unknown
      usage?: unknown
      error?: unknown
      type?: unknown
      response?: unknown
      model?: unknown
    }
    try {
      json = JSON.parse(data) as typeof json
    } catch {
      return true // not ours to judge; the client sees what vLLM sent
    }
    if (model === undefined && typeof json.model === 'string') model = json.model
    if (json.error !== undefined && json.error !== null) {
      upstreamError = json.error
      return true
    }
    if (typeof json.type === 'string') return keepResponsesEvent(json.type, json)
    const choices = Array.isArray(json.choices) ? (json.choices as Choice[]) : []
    const chunkUsage = readUsage(json.usage)
    if (choices.length === 0 && chunkUsage !== undefined) {
      // The final usage chunk: exact figures, which settle the count.
      usage = chunkUsage
      count(chunkUsage.completionTokens - completionTokens)
      return !options.stripUsageChunk
    }
    let withContent = 0
    for (const choice of choices) {
      if (hasContent(choice)) withContent += 1
      // `length` wins: one sequence cut by max_tokens makes the answer's length a censored sample.
      if (choice.finish_reason === 'length') finishReason = 'length'
      else if (typeof choice.finish_reason === 'string') finishReason ??= choice.finish_reason
    }
    if (withContent > 0 && !sawContent) {
      sawContent = true
      options.onFirstContent?.()
    }
    // With continuous usage stats every chunk carries the running total; otherwise vLLM streams one token
    // per choice per chunk, so content-bearing choices are the count until the usage chunk settles it.
    if (chunkUsage !== undefined) count(chunkUsage.completionTokens - completionTokens)
    else count(withContent)
    return true
  }

  /**
   * The Responses API streams typed events (`response.output_text.delta`, …) and ends with
   * `response.completed` (or `.incomplete` / `.failed`) instead of `[DONE]`; its usage is the final
   * response's `usage: {input_tokens, output_tokens}`.
   */
  const keepResponsesEvent = (type: string, json: { response?: unknown }): boolean => {
    if (type === 'response.output_text.delta' || type === 'response.reasoning_text.delta') {
      if (!sawContent) {
        sawContent = true
        options.onFirstContent?.()
      }
      count(1)
    } else if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      sawDone = true
      const final = (json.response ?? {}) as { usage?: { input_tokens?: unknown; output_tokens?: unknown } }
      const output = final.usage?.output_tokens
      if (typeof output === 'number') {
        const input = final.usage?.input_tokens
        usage = { promptTokens: typeof input === 'number' ? input : 0, completionTokens: output }
        count(output - completionTokens)
      }
      if (type === 'response.failed') upstreamError = (json.response as { error?: unknown } | undefined)?.error ?? type
    } else if (type === 'error') upstreamError = json
    return true
  }

  const parser = createSseParser((data, raw) => {
    if (keep(data)) out += raw
  })
  const flush = (): void => {
    if (out.length === 0) return
    const text = out
    out = ''
    options.write(text)
  }

  return {
    push(chunk) {
      parser.push(chunk)
      flush()
    },
    end() {
      parser.end()
      flush()
    },
    get completionTokens() {
      return completionTokens
    },
    get usage() {
      return usage
    },
    get model() {
      return model
    },
    get upstreamError() {
      return upstreamError
    },
    get sawDone() {
      return sawDone
    },
    get sawContent() {
      return sawContent
    },
    get finishReason() {
      return finishReason
    },
  }
}
