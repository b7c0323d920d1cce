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
  if (reader === undefined) {
    const why =
      format === 'auto'
        ? `the first line matches no known trace format (${Object.keys(traceReaders).join(', ')}); give --format`
        : `unknown trace format ${JSON.stringify(format)} (known: ${Object.keys(traceReaders).join(', ')})`
    throw errors.invalidWorkload([source, why])
  }
  return reader.parse(text, { ...options, source })
}
