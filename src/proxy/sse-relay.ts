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
  /** The upstream sent an in-stream error event (`data: {"error": …}`). */
  readonly upstreamError: unknown
  readonly sawDone: boolean
  readonly sawContent: boolean
}

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

/** Event ends when the stream uses CRLF anywhere; `\n\n` alone (what vLLM sends) is found with indexOf. */
const CRLF_EVENT_END = /\r?\n\r?\n/g

/** The event's data: a single-line `data: …` event (all vLLM sends) needs no line split. */
function dataOf(event: string): string {
  if (event.startsWith('data: ') && !event.includes('\n')) return event.slice(6)
  let data = ''
  for (const line of event.split(/\r?\n/)) {
    if (line.startsWith('data:')) data += line.slice(line.startsWith('data: ') ? 6 : 5)
  }
  return data
}

export function createSseRelay(options: SseRelayOptions): SseRelay {
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

  /** Returns whether the event goes on to the client. */
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
      return true // not ours to judge; the client sees what vLLM sent
    }
    if (json.error !== undefined && json.error !== null) {
      upstreamError = json.error
      return true
    }
    const choices = Array.isArray(json.choices) ? (json.choices as Choice[]) : []
    const chunkUsage = readUsage(json.usage)
    if (choices.length === 0 && chunkUsage !== undefined) {
      // The final usage chunk: exact figures, which settle the count.
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
    // With continuous usage stats every chunk carries the running total; otherwise vLLM streams one token
    // per choice per chunk, so content-bearing choices are the count until the usage chunk settles it.
    if (chunkUsage !== undefined) count(chunkUsage.completionTokens - completionTokens)
    else count(withContent)
    return true
  }

  /**
   * Handles every complete event in `pending` and returns the text to forward. Scans from an offset and
   * slices `pending` once per chunk rather than once per event; a `\r` anywhere takes the CRLF-aware path.
   */
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
