import { Readable } from 'node:stream'
import { createInterface } from 'node:readline'
import type { KvgateError } from '../errors/index.js'
import { errors } from '../errors/index.js'
import { conversationTraceReader } from './conversation-trace-reader.js'
import { azureTraceReader, burstGptTraceReader } from './csv-trace-readers.js'
import { mooncakeTraceReader } from './mooncake-trace-reader.js'
import type { TraceParseOptions, TraceParseResult, TraceReader } from './trace-reader.js'
import { firstLine } from './trace-reader.js'

/** Trace readers by the name `--format` takes; auto-detection tries them in this order. */
export const traceReaders: Readonly<Record<string, TraceReader>> = Object.freeze({
  conversation: conversationTraceReader,
  burstgpt: burstGptTraceReader,
  azure: azureTraceReader,
  mooncake: mooncakeTraceReader,
})

/** The reader whose `detect` accepts the text's first line, if any. */
export function detectTraceReader(text: string): TraceReader | undefined {
  const header = firstLine(text)
  return Object.values(traceReaders).find((reader) => reader.detect(header))
}

/** Parse a trace with the named reader, or the detected one for `auto`. */
export function parseTrace(text: string, format = 'auto', options: TraceParseOptions = {}): TraceParseResult {
  const source = options.source ?? '(input)'
  const reader = format === 'auto' ? detectTraceReader(text) : traceReaders[format]
  if (reader === undefined) throw unknownFormat(source, format)
  return reader.parse(text, { ...options, source })
}

/**
 * Parse a trace from a stream (a file stream, stdin) line by line, so a multi-gigabyte trace never sits in
 * memory as text: only its requests do. The format is detected from the first non-blank line for `auto`.
 */
export async function parseTraceStream(
  input: AsyncIterable<string | Buffer> | NodeJS.ReadableStream,
  format = 'auto',
  options: TraceParseOptions = {},
): Promise<TraceParseResult> {
  const source = options.source ?? '(input)'
  const lines = createInterface({
    input: input instanceof Readable ? input : Readable.from(input as AsyncIterable<string | Buffer>),
    crlfDelay: Infinity,
  })
  let parser: ReturnType<TraceReader['createParser']> | undefined
  let line = 0
  for await (const raw of lines) {
    line++
    if (raw.trim() === '') continue
    if (parser === undefined) {
      const reader = format === 'auto' ? Object.values(traceReaders).find((r) => r.detect(raw)) : traceReaders[format]
      if (reader === undefined) {
        lines.close()
        throw unknownFormat(source, format)
      }
      parser = reader.createParser({ ...options, source })
    }
    parser.push(raw, line)
  }
  if (parser === undefined) {
    const reader = traceReaders[format]
    if (reader === undefined) throw unknownFormat(source, format)
    return reader.createParser({ ...options, source }).finish()
  }
  return parser.finish()
}

function unknownFormat(source: string, format: string): KvgateError {
  const why =
    format === 'auto'
      ? `the first line matches no known trace format (${Object.keys(traceReaders).join(', ')}); give --format`
      : `unknown trace format ${JSON.stringify(format)} (known: ${Object.keys(traceReaders).join(', ')})`
  return errors.invalidWorkload([source, why])
}
