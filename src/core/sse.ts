/**
 * An incremental Server-Sent Events reader: the one parser the gateway's relay, the bench's client and the
 * tests share. Bytes go in as the network delivers them; each complete event comes out once, with its text
 * exactly as it arrived (so a relay can pass it on untouched) and its data.
 *
 * UTF-8 is decoded in streaming mode, so a multi-byte character split across two chunks is joined before the
 * event is read (decoding each chunk on its own turns both halves into U+FFFD). Events end at a blank line,
 * `\n\n` or `\r\n\r\n`; a stream with no `\r` (what vLLM sends) is scanned with `indexOf` alone, and one with a
 * `\r` anywhere takes the CRLF-aware path.
 */

/**
 * Called for each complete event: `data` is its data lines joined with `\n` (without `data:` and the one
 * space after it; empty for a comment or a field-only event), `raw` the event's text with its terminator
 * (none for a partial event flushed by `end()`).
 */
export type SseEventHandler = (data: string, raw: string) => void

export interface SseParser {
  /** Decode `chunk` and hand over every event it completes, in order. */
  push(chunk: Uint8Array | string): void
  /** The stream ended: hand over a partial event left without its blank line, if any. */
  end(): void
}

/** Event ends when the stream uses CRLF anywhere. */
const CRLF_EVENT_END = /\r?\n\r?\n/g

/** The data of one event (without its terminator): a single-line `data: …` event (all vLLM sends) needs no split. */
export function sseData(event: string): string {
  if (event.startsWith('data: ') && !event.includes('\n')) return event.slice(6)
  let data: string | undefined
  for (const line of event.split(/\r?\n/)) {
    if (!line.startsWith('data')) continue
    let value: string
    if (line.length === 4) value = ''
    else if (line[4] === ':') value = line.slice(line[5] === ' ' ? 6 : 5)
    else continue // a field named e.g. `database`, not `data`
    data = data === undefined ? value : `${data}\n${value}`
  }
  return data ?? ''
}

export function createSseParser(onEvent: SseEventHandler): SseParser {
  const decoder = new TextDecoder()
  let pending = ''

  // Scans from an offset and slices `pending` once per chunk rather than once per event.
  const drain = (): void => {
    let start = 0
    if (pending.includes('\r')) {
      CRLF_EVENT_END.lastIndex = 0
      for (let match = CRLF_EVENT_END.exec(pending); match !== null; match = CRLF_EVENT_END.exec(pending)) {
        const end = match.index + match[0].length
        onEvent(sseData(pending.slice(start, match.index)), pending.slice(start, end))
        start = end
      }
    } else {
      for (let at = pending.indexOf('\n\n'); at !== -1; at = pending.indexOf('\n\n', start)) {
        onEvent(sseData(pending.slice(start, at)), pending.slice(start, at + 2))
        start = at + 2
      }
    }
    if (start > 0) pending = pending.slice(start)
  }

  return {
    push(chunk) {
      pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true })
      drain()
    },
    end() {
      pending += decoder.decode()
      drain()
      if (pending.length > 0) {
        const rest = pending
        pending = ''
        onEvent(sseData(rest), rest)
      }
    },
  }
}

/** The data of every event of a whole SSE body that has any (comments and blank events dropped). */
export function parseSseData(text: string): string[] {
  const out: string[] = []
  const parser = createSseParser((data, raw) => {
    if (data.length > 0 || /(^|\n)data/.test(raw)) out.push(data)
  })
  parser.push(text)
  parser.end()
  return out
}
