import { parse as parseCsv } from 'csv-parse/sync'
import type { TraceParseResult, TraceReader } from './trace-reader.js'
import { RowCollector } from './trace-reader.js'

interface CsvRow {
  line: number
  fields: Record<string, string>
}

/**
 * CSV rows keyed by the header's column names (trimmed, lower-cased). csv-parse handles quoting; a row it
 * cannot parse, or with the wrong number of fields, goes to the malformed-row policy instead of stopping.
 */
function csvRows(text: string, rows: RowCollector): CsvRow[] {
  let records: { record: string[]; info: { lines: number } }[]
  try {
    records = parseCsv(text, {
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
      // Keep parsing past a bad quote so one broken row does not lose the file: it becomes a short row.
      relax_quotes: true,
    }) as unknown as { record: string[]; info: { lines: number } }[]
  } catch (err) {
    const line = (err as { lines?: number }).lines ?? 0
    rows.malformed(line, `CSV syntax: ${(err as Error).message}`)
    return []
  }
  const [header, ...body] = records
  if (header === undefined) return []
  const names = header.record.map((name) => name.trim().toLowerCase())
  const out: CsvRow[] = []
  for (const { record, info } of body) {
    if (record.length !== names.length) {
      rows.malformed(info.lines, `expected ${names.length} fields, got ${record.length}`)
      continue
    }
    const fields: Record<string, string> = {}
    names.forEach((name, i) => (fields[name] = record[i] ?? ''))
    out.push({ line: info.lines, fields })
  }
  return out
}

/**
 * BurstGPT (`Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type`), timestamps in
 * seconds from the start of the trace. Failed requests have 0 response tokens; they are kept (the bench asks
 * for at least one token) so the arrival pattern stays the trace's.
 */
export const burstGptTraceReader: TraceReader = {
  name: 'burstgpt',
  description: 'BurstGPT CSV: Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type',
  detect: (headerLine) => /^\s*"?timestamp"?\s*,.*request tokens.*response tokens/i.test(headerLine),
  parse(text, options): TraceParseResult {
    const rows = new RowCollector('burstgpt', options)
    for (const { line, fields } of csvRows(text, rows)) {
      const seconds = rows.number(fields['timestamp'], 'Timestamp')
      const input = rows.integer(fields['request tokens'], 'Request tokens')
      const output = rows.integer(fields['response tokens'], 'Response tokens')
      const bad = [seconds, input, output].find((v) => typeof v === 'string')
      if (typeof bad === 'string') {
        rows.malformed(line, bad)
        continue
      }
      rows.add({ arrivalMs: (seconds as number) * 1000, inputTokens: input as number, outputTokens: output as number, line })
    }
    return rows.finish()
  },
}

/**
 * `2023-11-16 18:15:46.6805900` (Azure writes 7 fractional digits, which `Date.parse` rejects) and ISO
 * forms, read as UTC unless an offset is given. Milliseconds since the epoch, fractional.
 */
export function parseDateTimeMs(value: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(value.trim())
  if (match === null) return undefined
  const [, y, mo, d, h, mi, s, frac, zone] = match
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))
  if (frac !== undefined) ms += Number(`0.${frac}`) * 1000
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1
    const digits = zone.slice(1).replace(':', '')
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000
  }
  return Number.isFinite(ms) ? ms : undefined
}

/** Azure LLM inference traces (`TIMESTAMP, ContextTokens, GeneratedTokens`), timestamps as date-times. */
export const azureTraceReader: TraceReader = {
  name: 'azure',
  description: 'Azure LLM inference CSV: TIMESTAMP,ContextTokens,GeneratedTokens (date-time timestamps)',
  detect: (headerLine) => /^\s*"?timestamp"?\s*,\s*"?contexttokens"?\s*,\s*"?generatedtokens/i.test(headerLine),
  parse(text, options): TraceParseResult {
    const rows = new RowCollector('azure', options)
    for (const { line, fields } of csvRows(text, rows)) {
      const timestamp = fields['timestamp'] ?? ''
      const ms = parseDateTimeMs(timestamp)
      const input = rows.integer(fields['contexttokens'], 'ContextTokens')
      const output = rows.integer(fields['generatedtokens'], 'GeneratedTokens')
      if (ms === undefined) {
        rows.malformed(line, `TIMESTAMP is not a date-time: ${JSON.stringify(timestamp)}`)
        continue
      }
      const bad = [input, output].find((v) => typeof v === 'string')
      if (typeof bad === 'string') {
        rows.malformed(line, bad)
        continue
      }
      rows.add({ arrivalMs: ms, inputTokens: input as number, outputTokens: output as number, line })
    }
    return rows.finish()
  },
}
