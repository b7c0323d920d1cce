import { createReadStream, openSync, readFileSync, readSync, closeSync } from 'node:fs'
import type { Random } from '../core/index.js'
import { errors, KvgateError } from '../errors/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { generateConversations, readShareGpt } from './conversation-inputs.js'
import { createNumpyRandomState } from './mt19937.js'
import { generateMultiUserTrace } from './multi-user-generator.js'
import { parseTrace, parseTraceStream, traceReaders } from './trace-readers.js'
import type { Workload } from './workload.js'

/** Formats that are whole JSON documents rather than line-oriented traces. */
export const JSON_WORKLOAD_FORMATS = ['generate-conversations', 'sharegpt', 'multi-user'] as const

export function workloadFormats(): string[] {
  return ['auto', ...Object.keys(traceReaders), ...JSON_WORKLOAD_FORMATS]
}

export interface LoadWorkloadOptions {
  format?: string
  source?: string
  onMalformed?: 'error' | 'skip'
  random: Random
  counter: TokenCounter
  /**
   * `generate_conversations` draws from numpy's generator seeded with this (vLLM's `np.random.seed(seed)`), so
   * one seed gives vLLM's conversations; without it they come from `random`.
   */
  numpySeed?: number
}

/** The JSON document's kind, from `filetype` or shape, or undefined when the text is not one JSON value. */
function jsonKind(text: string): { kind: (typeof JSON_WORKLOAD_FORMATS)[number]; value: unknown } | undefined {
  const head = text.trimStart()[0]
  if (head !== '{' && head !== '[') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined // JSONL (Mooncake) is not one JSON value
  }
  if (Array.isArray(value)) return { kind: 'sharegpt', value }
  const filetype = (value as Record<string, unknown>)['filetype']
  if (filetype === 'generate_conversations') return { kind: 'generate-conversations', value }
  if (filetype === 'kvgate_multi_user') return { kind: 'multi-user', value }
  return undefined
}

/** Read any supported input into a workload: the format is detected unless given. */
export function loadWorkload(text: string, options: LoadWorkloadOptions): Workload {
  const source = options.source ?? '(input)'
  const format = options.format ?? 'auto'
  const json =
    format === 'auto' || (JSON_WORKLOAD_FORMATS as readonly string[]).includes(format) ? jsonKind(text) : undefined
  if (json !== undefined && (format === 'auto' || format === json.kind)) {
    switch (json.kind) {
      case 'generate-conversations': {
        const random = options.numpySeed !== undefined ? createNumpyRandomState(options.numpySeed) : options.random
        const generated = generateConversations(json.value as Record<string, unknown>, random, source, options.counter)
        return {
          kind: 'conversations',
          format: json.kind,
          conversations: generated.conversations,
          commonPrefixTokens: generated.commonPrefixTokens,
          skipped: [],
        }
      }
      case 'sharegpt': {
        const { conversations, dropped } = readShareGpt(json.value as unknown[], options.counter, source)
        const skipped = Array.from({ length: dropped }, () => ({
          line: 0,
          reason: 'ShareGPT item without a user/assistant pair',
        }))
        return { kind: 'conversations', format: json.kind, conversations, commonPrefixTokens: 0, skipped }
      }
      case 'multi-user': {
        const requests = generateMultiUserTrace(json.value as Record<string, unknown>, options.random, source)
        return { kind: 'trace', format: json.kind, requests, skipped: [] }
      }
    }
  }
  if ((JSON_WORKLOAD_FORMATS as readonly string[]).includes(format)) {
    throw errors.invalidWorkload([source, `is not a ${format} JSON document`])
  }
  const parsed = parseTrace(text, format, {
    source,
    ...(options.onMalformed ? { onMalformed: options.onMalformed } : {}),
  })
  return { kind: 'trace', format: parsed.format, requests: parsed.requests, skipped: parsed.skipped }
}

/** The first line of a file, from its first 64 KiB (enough for any trace header or Mooncake record). */
function peekFirstLine(path: string): string {
  const fd = openSync(path, 'r')
  try {
    const buffer = Buffer.alloc(64 * 1024)
    const bytes = readSync(fd, buffer, 0, buffer.length, 0)
    const text = buffer.subarray(0, bytes).toString('utf8')
    return (
      text
        .split('\n')
        .find((line) => line.trim() !== '')
        ?.replace(/\r$/, '') ?? ''
    )
  } finally {
    closeSync(fd)
  }
}

/**
 * Read a workload file. Traces (a known header, or a given trace format) are streamed line by line so a
 * large trace never sits in memory as text; JSON documents (conversation specs, ShareGPT) are read whole.
 */
export async function loadWorkloadFile(path: string, options: Omit<LoadWorkloadOptions, 'source'>): Promise<Workload> {
  const format = options.format ?? 'auto'
  try {
    const isTrace =
      format in traceReaders ||
      (format === 'auto' && Object.values(traceReaders).some((r) => r.detect(peekFirstLine(path))))
    if (isTrace) {
      const parsed = await parseTraceStream(createReadStream(path), format, {
        source: path,
        ...(options.onMalformed ? { onMalformed: options.onMalformed } : {}),
      })
      return { kind: 'trace', format: parsed.format, requests: parsed.requests, skipped: parsed.skipped }
    }
    return loadWorkload(readFileSync(path, 'utf8'), { ...options, source: path })
  } catch (err) {
    // Parse errors already name the file and line; what is left is the file system (missing, unreadable).
    if (err instanceof KvgateError) throw err
    throw errors.invalidWorkload([path, (err as Error).message], { cause: err })
  }
}
