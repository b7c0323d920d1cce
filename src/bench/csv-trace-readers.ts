import { parse as parseCsv } from 'csv-parse/sync'
import type { TraceParseOptions, TraceRowParser } from './trace-reader.js'
import { defineTraceReader, RowCollector } from './trace-reader.js'
import type { TraceRequest } from './workload.js'

/**
 * One CSV line's fields. Trace CSVs quote rarely, so a line without quotes is split directly and only a
 * quoted one goes through csv-parse (records spanning lines are not supported: no trace format has them).
 */
function csvFields(content: string): string[] | string {
  if (!content.includes('"')) return content.split(',').map((f) => f.trim())
  try {
    const [record] = parseCsv(content, { relax_quotes: true, relax_column_count: true, trim: true }) as string[][]
    return record ?? []
  } catch (err) {
    return `CSV syntax: ${(err as Error).message}`
  }
}

/**
 * A CSV trace parser: the first line names the columns (trimmed, lower-cased); each later line is checked
 * for its field count and handed to `read` as a column → value map, which returns a request or the reason
 * the row is malformed.
 */
function createCsvParser(
  format: string,
  options: TraceParseOptions | undefined,
  read: (fields: Record<string, string>, rows: RowCollector) => Omit<TraceRequest, 'line'> | string,
): TraceRowParser {
  const rows = new RowCollector(format, options)
  let names: string[] | undefined
  return {
    finish: () => rows.finish(),
    push(content, line) {
      const record = csvFields(content)
      if (typeof record === 'string') return rows.malformed(line, record)
      if (names === undefined) {
        names = record.map((name) => name.toLowerCase())
        return
      }
      if (record.length !== names.length)
        return rows.malformed(line, `expected ${names.length} fields, got ${record.length}`)
      const fields: Record<string, string> = {}
      names.forEach((name, i) => {
        fields[name] = record[i] ?? ''
      })
      const request = read(fields, rows)
      if (typeof request === 'string') rows.malformed(line, request)
      else rows.add({ ...request, line })
    },
  }
}

/** The first reason among parsed fields, if any field failed. */
const firstProblem = (...values: (number | string)[]): string | undefined =>
  values.find((v): v is string => typeof v === 'string')

/**
 * BurstGPT (`Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type`), timestamps in
 * seconds from the start of the trace. Failed requests have 0 response tokens; they are kept (the bench asks
 * for at least one token) so the arrival pattern stays the trace's.
 */
export const burstGptTraceReader = defineTraceReader({
  name: 'burstgpt',
  description: 'BurstGPT CSV: Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type',
  detect: (headerLine) => /^\s*"?timestamp"?\s*,.*request tokens.*response tokens/i.test(headerLine),
  createParser: (options) =>
    createCsvParser('burstgpt', options, (fields, rows) => {
      const seconds = rows.number(fields['timestamp'], 'Timestamp')
      const input = rows.integer(fields['request tokens'], 'Request tokens')
      const output = rows.integer(fields['response tokens'], 'Response tokens')
      return (
        firstProblem(seconds, input, output) ?? {
          arrivalMs: (seconds as number) * 1000,
          inputTokens: input as number,
          outputTokens: output as number,
        }
      )
    }),
})

/**
 * `2023-11-16 18:15:46.6805900` (Azure writes 7 fractional digits, which `Date.parse` rejects) and ISO
 * forms, read as UTC unless an offset is given. Milliseconds since the epoch, fractional.
 */
export function parseDateTimeMs(value: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(
    value.trim(),
  )
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
export const azureTraceReader = defineTraceReader({
  name: 'azure',
  description: 'Azure LLM inference CSV: TIMESTAMP,ContextTokens,GeneratedTokens (date-time timestamps)',
  detect: (headerLine) => /^\s*"?timestamp"?\s*,\s*"?contexttokens"?\s*,\s*"?generatedtokens/i.test(headerLine),
  createParser: (options) =>
    createCsvParser('azure', options, (fields, rows) => {
      const timestamp = fields['timestamp'] ?? ''
      const ms = parseDateTimeMs(timestamp)
      if (ms === undefined) return `TIMESTAMP is not a date-time: ${JSON.stringify(timestamp)}`
      const input = rows.integer(fields['contexttokens'], 'ContextTokens')
      const output = rows.integer(fields['generatedtokens'], 'GeneratedTokens')
      return (
        firstProblem(input, output) ?? { arrivalMs: ms, inputTokens: input as number, outputTokens: output as number }
      )
    }),
})
