import type { SseRelay, SseRelayOptions, SseUsage } from '../../../src/proxy/index.js'

/**
 * A candidate for src/proxy/sse-relay.ts, kept here (the proxy is not this benchmark's to edit) so that
 * bench/perf/sse-relay.ts can measure the suggested change against the shipped relay on the same bytes and
 * check that both forward the same text and count the same tokens. Same contract, three differences:
 *
 * 1. One `write()` per upstream chunk (every complete, forwarded event of the chunk, concatenated) instead of
 *    one per event: each `write()` on the client socket is a syscall when the socket is idle, and a chunk
 *    read from a busy upstream carries several events.
 * 2. Events are found with `indexOf('\n\n')` from an offset, and `pending` is sliced once per chunk, not
 *    once per event (a `\r` anywhere falls back to the general CRLF-aware path).
 * 3. A single-line `data: …` event (all vLLM sends) skips the line split.
 *
 * The JSON parse per event stays: it is what counts tokens and finds the usage chunk and in-stream errors.
 */
interface Choice {
  delta?: { content?: unknown; reasoning_content?: unknown; tool_calls?: unknown } | null
  text?: unknown
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

const CRLF_EVENT_END = /\r?\n\r?\n/g

export function createCandidateSseRelay(options: SseRelayOptions): SseRelay {
  const decoder = new TextDecoder()
  let pending = ''
  let completionTokens = 0
  let usage: SseUsage | undefined
  let upstreamError: unknown
  let sawDone = false
  let sawContent = false

  const count = (tokens: number): void => {
    if (tokens <= 0) return
    completionTokens += tokens
    options.onTokens?.(tokens)
  }

  const dataOf = (event: string): string => {
    if (event.startsWith('data: ') && !event.includes('\n')) return event.slice(6)
    let data = ''
    for (const line of event.split(/\r?\n/)) {
      if (line.startsWith('data:')) data += line.slice(line.startsWith('data: ') ? 6 : 5)
    }
    return data
  }

  const handle = (event: string): boolean => {
    const data = dataOf(event)
    if (data.length === 0) return true
    if (data === '[DONE]') {
      sawDone = true
      return true
    }
    let json: { choices?: unknown; usage?: unknown; error?: unknown }
    try {
      json = JSON.parse(data) as typeof json
    } catch {
      return true
    }
    if (json.error !== undefined && json.error !== null) {
      upstreamError = json.error
      return true
    }
    const choices = Array.isArray(json.choices) ? (json.choices as Choice[]) : []
    const chunkUsage = readUsage(json.usage)
    if (choices.length === 0 && chunkUsage !== undefined) {
      usage = chunkUsage
      count(chunkUsage.completionTokens - completionTokens)
      return !options.stripUsageChunk
    }
    let withContent = 0
    for (const choice of choices) if (hasContent(choice)) withContent += 1
    if (withContent > 0 && !sawContent) {
      sawContent = true
      options.onFirstContent?.()
    }
    if (chunkUsage !== undefined) count(chunkUsage.completionTokens - completionTokens)
    else count(withContent)
    return true
  }

  /** Handles every complete event in `pending`; returns the text to forward. */
  const drain = (): string => {
    let out = ''
    let start = 0
    if (pending.includes('\r')) {
      CRLF_EVENT_END.lastIndex = 0
      for (let match = CRLF_EVENT_END.exec(pending); match !== null; match = CRLF_EVENT_END.exec(pending)) {
        const end = match.index + match[0].length
        if (handle(pending.slice(start, match.index))) out += pending.slice(start, end)
        start = end
      }
    } else {
      for (let at = pending.indexOf('\n\n'); at !== -1; at = pending.indexOf('\n\n', start)) {
        if (handle(pending.slice(start, at))) out += pending.slice(start, at + 2)
        start = at + 2
      }
    }
    if (start > 0) pending = pending.slice(start)
    return out
  }

  return {
    push(chunk) {
      pending += decoder.decode(chunk, { stream: true })
      const out = drain()
      if (out.length > 0) options.write(out)
    },
    end() {
      pending += decoder.decode()
      let out = drain()
      if (pending.length > 0) {
        if (handle(pending)) out += pending
        pending = ''
      }
      if (out.length > 0) options.write(out)
    },
    get completionTokens() {
      return completionTokens
    },
    get usage() {
      return usage
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
  }
}
