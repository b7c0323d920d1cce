import { errors } from '../errors/index.js'
import type { MalformedRow, TraceRequest } from './workload.js'

/**
 * The contract every trace format implements. A reader recognises its format from the first line
 * (`detect`), and turns the file's text into requests sorted by arrival, with arrival times relative to the
 * first request. Readers are registered by name in `./trace-readers.ts`; one contract suite
 * (`test/bench/trace-reader-contract.test.ts`) runs against all of them.
 */
export interface TraceReader {
  /** The name `--format` takes. */
  readonly name: string
  readonly description: string
  /** Does this first line (a header, or the first JSON record) belong to this format? */
  detect(headerLine: string): boolean
  /** A parser fed one line at a time, so a trace can be read from a stream without holding its text. */
  createParser(options?: TraceParseOptions): TraceRowParser
  /** The whole text at once: `createParser` fed every line. */
  parse(text: string, options?: TraceParseOptions): TraceParseResult
}

export interface TraceRowParser {
  /** One line without its newline; blank lines are never pushed. `line` is 1-based in the file. */
  push(content: string, line: number): void
  finish(): TraceParseResult
}

/** A reader from its line parser: `parse(text)` is the same parser fed the text's lines. */
export function defineTraceReader(reader: Omit<TraceReader, 'parse'>): TraceReader {
  return {
    ...reader,
    parse(text, options) {
      const parser = reader.createParser(options)
      for (const { line, content } of numberedLines(text)) parser.push(content, line)
      return parser.finish()
    },
  }
}

export interface TraceParseOptions {
  /** File name used in error messages. */
  source?: string
  /**
   * What a malformed row does: `error` (default) stops with an error naming the line; `skip` drops the row,
   * counts it and lists it in the result so the run reports it.
   */
  onMalformed?: 'error' | 'skip'
}

export interface TraceParseResult {
  format: string
  requests: TraceRequest[]
  skipped: MalformedRow[]
}

/**
 * Collects rows for one parse: validates numbers, applies the malformed-row policy and finishes with the
 * requests sorted by arrival (stable, so equal timestamps keep file order) and rebased to start at 0.
 */
export class RowCollector {
  readonly #format: string
  readonly #source: string
  readonly #skip: boolean
  readonly #requests: TraceRequest[] = []
  readonly #skipped: MalformedRow[] = []

  constructor(format: string, options: TraceParseOptions = {}) {
    this.#format = format
    this.#source = options.source ?? `(${format})`
    this.#skip = options.onMalformed === 'skip'
  }

  add(request: TraceRequest): void {
    this.#requests.push(request)
  }

  /** Report a bad row: throws `invalid_trace` naming the line, or records it when skipping. */
  malformed(line: number, reason: string): void {
    if (!this.#skip) throw errors.invalidTrace([this.#source, line, reason])
    this.#skipped.push({ line, reason })
  }

  /** A finite number ≥ 0 from a field, or a reason why not. */
  number(field: string | undefined, name: string): number | string {
    if (field === undefined || field.trim() === '') return `missing ${name}`
    const value = Number(field)
    if (!Number.isFinite(value)) return `${name} is not a number: ${JSON.stringify(field)}`
    if (value < 0) return `${name} is negative: ${field}`
    return value
  }

  /** A non-negative integer (token counts, rounds). */
  integer(field: string | undefined, name: string): number | string {
    const value = this.number(field, name)
    if (typeof value === 'number' && !Number.isInteger(value)) return `${name} is not an integer: ${field}`
    return value
  }

  finish(): TraceParseResult {
    const requests = this.#requests
      .map((request, index) => ({ request, index }))
      .sort((a, b) => a.request.arrivalMs - b.request.arrivalMs || a.index - b.index)
      .map(({ request }) => request)
    const originMs = requests[0]?.arrivalMs ?? 0
    for (const request of requests) request.arrivalMs -= originMs
    return { format: this.#format, requests, skipped: this.#skipped }
  }
}

/** Lines of a text with their 1-based numbers, blank lines dropped. */
export function* numberedLines(text: string): Generator<{ line: number; content: string }> {
  let line = 0
  let start = 0
  while (start <= text.length) {
    let end = text.indexOf('\n', start)
    if (end < 0) end = text.length
    line++
    const content = text.slice(start, end).replace(/\r$/, '')
    if (content.trim() !== '') yield { line, content }
    start = end + 1
  }
}

/** The first non-blank line, which `detect` sees. */
export function firstLine(text: string): string {
  for (const { content } of numberedLines(text)) return content
  return ''
}
