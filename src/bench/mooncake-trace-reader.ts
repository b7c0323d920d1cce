import { defineTraceReader, RowCollector } from './trace-reader.js'
import { MOONCAKE_BLOCK_TOKENS } from './workload.js'

/**
 * Mooncake's JSONL traces: one object per line with `timestamp` (ms), `input_length`, `output_length` and
 * `hash_ids`, each id one 512-token block of the prompt. Equal ids are equal blocks, so the bench builds
 * prompts that share prefixes block by block.
 */
export const mooncakeTraceReader = defineTraceReader({
  name: 'mooncake',
  description: 'Mooncake JSONL: {"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}',
  detect(headerLine) {
    if (!headerLine.trimStart().startsWith('{')) return false
    try {
      const record = JSON.parse(headerLine) as Record<string, unknown>
      return 'timestamp' in record && 'input_length' in record && 'output_length' in record
    } catch {
      return false
    }
  },
  createParser(options) {
    const rows = new RowCollector('mooncake', options)
    return {
      finish: () => rows.finish(),
      push(content, line) {
        let record: Record<string, unknown>
        try {
          const parsed: unknown = JSON.parse(content)
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
            throw new TypeError('not an object')
          record = parsed as Record<string, unknown>
        } catch (err) {
          rows.malformed(line, `not a JSON object: ${(err as Error).message}`)
          return
        }
        const ms = rows.number(String(record['timestamp'] ?? ''), 'timestamp')
        const input = rows.integer(String(record['input_length'] ?? ''), 'input_length')
        const output = rows.integer(String(record['output_length'] ?? ''), 'output_length')
        const bad = [ms, input, output].find((v) => typeof v === 'string')
        if (typeof bad === 'string') {
          rows.malformed(line, bad)
          return
        }
        const hashIds = record['hash_ids'] ?? []
        if (!Array.isArray(hashIds) || !hashIds.every((id) => Number.isInteger(id))) {
          rows.malformed(line, 'hash_ids is not an array of integers')
          return
        }
        // Mooncake writes ceil(input_length / 512) ids; one fewer is tolerated (the bench's prompt loses 2
        // tokens to chat markers, and a trace rounding down is harmless), anything further off is a broken row.
        const most = Math.ceil((input as number) / MOONCAKE_BLOCK_TOKENS)
        const least = Math.floor((input as number) / MOONCAKE_BLOCK_TOKENS)
        if (hashIds.length > 0 && (hashIds.length < least || hashIds.length > most)) {
          rows.malformed(line, `hash_ids has ${hashIds.length} blocks, input_length ${input as number} needs ${most}`)
          return
        }
        rows.add({
          arrivalMs: ms as number,
          inputTokens: input as number,
          outputTokens: output as number,
          ...(hashIds.length > 0 ? { hashIds: hashIds as number[] } : {}),
          line,
        })
      },
    }
  },
})
