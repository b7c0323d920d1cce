import { describe, expect, it } from 'vitest'
import { KvgateError } from '../../src/errors/index.js'
import { Readable } from 'node:stream'
import { detectTraceReader, parseTrace, parseTraceStream, traceReaders } from '../../src/bench/index.js'

/**
 * One contract suite over every registered trace reader: each case gives a header, valid rows (deliberately
 * out of time order), one malformed row, and what the rows must become.
 */
interface ReaderCase {
  header: string
  rows: string[]
  malformed: string
  /** Arrival ms (rebased, sorted) and token counts the valid rows must give. */
  expected: { arrivalMs: number; inputTokens: number; outputTokens: number }[]
}

const cases: Record<string, ReaderCase> = {
  conversation: {
    header: 'user_id time_stamp(seconds) query_length response_length round_index',
    rows: ['7 12.5 30 10 1', '7 10.0 40 12 0', '9 11.0 25 5 0'],
    malformed: '7 13.0 abc 10 2',
    expected: [
      { arrivalMs: 0, inputTokens: 40, outputTokens: 12 },
      { arrivalMs: 1000, inputTokens: 25, outputTokens: 5 },
      { arrivalMs: 2500, inputTokens: 30, outputTokens: 10 },
    ],
  },
  burstgpt: {
    header: 'Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type',
    rows: ['5,ChatGPT,100,20,120,Conversation log', '3,GPT-4,50,10,60,API log', '4.5,ChatGPT,70,0,70,API log'],
    malformed: '6,ChatGPT,-5,20,15,API log',
    expected: [
      { arrivalMs: 0, inputTokens: 50, outputTokens: 10 },
      { arrivalMs: 1500, inputTokens: 70, outputTokens: 0 },
      { arrivalMs: 2000, inputTokens: 100, outputTokens: 20 },
    ],
  },
  azure: {
    header: 'TIMESTAMP,ContextTokens,GeneratedTokens',
    rows: ['2023-11-16 18:15:48.5000000,300,40', '2023-11-16 18:15:46.0000000,100,10', '2023-11-16T18:15:47Z,200,20'],
    malformed: 'yesterday,100,10',
    expected: [
      { arrivalMs: 0, inputTokens: 100, outputTokens: 10 },
      { arrivalMs: 1000, inputTokens: 200, outputTokens: 20 },
      { arrivalMs: 2500, inputTokens: 300, outputTokens: 40 },
    ],
  },
  mooncake: {
    header: '{"timestamp": 2000, "input_length": 600, "output_length": 9, "hash_ids": [0, 1]}',
    rows: [
      '{"timestamp": 1000, "input_length": 512, "output_length": 7, "hash_ids": [0]}',
      '{"timestamp": 1500, "input_length": 10, "output_length": 3, "hash_ids": [5]}',
    ],
    malformed: '{"timestamp": 3000, "input_length": 1600, "output_length": 9, "hash_ids": [0]}',
    expected: [
      { arrivalMs: 0, inputTokens: 512, outputTokens: 7 },
      { arrivalMs: 500, inputTokens: 10, outputTokens: 3 },
      { arrivalMs: 1000, inputTokens: 600, outputTokens: 9 },
    ],
  },
}

// Mooncake has no header line: its "header" is the first record.
const text = (_name: string, c: ReaderCase, extra: string[] = []): string =>
  `${[c.header, ...c.rows, ...extra].join('\n')}\n`

describe('every trace reader has a contract case', () => {
  it('covers all registered readers', () => {
    expect(Object.keys(cases).sort()).toEqual(Object.keys(traceReaders).sort())
  })
})

for (const [name, reader] of Object.entries(traceReaders)) {
  const c = cases[name] as ReaderCase
  describe(`trace reader contract: ${name}`, () => {
    it('detects its own first line and no other format claims it', () => {
      expect(reader.detect(c.header)).toBe(true)
      for (const [other, otherCase] of Object.entries(cases)) {
        if (other !== name) expect(reader.detect(otherCase.header), `${name} claims ${other}`).toBe(false)
      }
      expect(detectTraceReader(text(name, c))?.name).toBe(name)
    })

    it('parses rows sorted by arrival and rebased to 0', () => {
      const result = reader.parse(text(name, c))
      expect(result.format).toBe(name)
      expect(result.skipped).toEqual([])
      expect(
        result.requests.map(({ arrivalMs, inputTokens, outputTokens }) => ({
          arrivalMs: Math.round(arrivalMs),
          inputTokens,
          outputTokens,
        })),
      ).toEqual(c.expected)
      for (const r of result.requests) expect(r.line).toBeGreaterThan(0)
    })

    it('reads a stream line by line to the same result as the text, chunk boundaries anywhere', async () => {
      const whole = text(name, c, [c.malformed])
      // Chunks of 7 bytes split lines (and CRLF pairs) at arbitrary points.
      const crlf = whole.replace(/\n/g, '\r\n')
      const chunks = Array.from({ length: Math.ceil(crlf.length / 7) }, (_, i) =>
        Buffer.from(crlf.slice(i * 7, i * 7 + 7)),
      )
      const streamed = await parseTraceStream(Readable.from(chunks), 'auto', { onMalformed: 'skip' })
      expect(streamed).toEqual(parseTrace(whole, 'auto', { onMalformed: 'skip' }))
      expect(streamed.format).toBe(name)
      await expect(parseTraceStream(Readable.from([whole]), name, { source: 's' })).rejects.toThrow(
        `s, line ${c.rows.length + 2}:`,
      )
    })

    it('stops at a malformed row with an error naming the file and line', () => {
      const malformedLine = 1 + c.rows.length + 1
      let caught: unknown
      try {
        parseTrace(text(name, c, [c.malformed]), name, { source: `trace.${name}` })
      } catch (err) {
        caught = err
      }
      expect(caught).toBeInstanceOf(KvgateError)
      expect((caught as KvgateError).code).toBe('invalid_trace')
      expect((caught as KvgateError).message).toContain(`trace.${name}, line ${malformedLine}:`)
    })

    it('skips, counts and reports a malformed row when asked, keeping the rest', () => {
      const result = parseTrace(text(name, c, [c.malformed, '']), name, { onMalformed: 'skip' })
      expect(result.requests).toHaveLength(c.expected.length)
      expect(result.skipped).toHaveLength(1)
      expect(result.skipped[0]?.line).toBe(1 + c.rows.length + 1)
      expect(result.skipped[0]?.reason.length).toBeGreaterThan(0)
    })
  })
}

describe('format-specific readings', () => {
  it('seed 000: a user whose round index restarts begins a new conversation', () => {
    const result = parseTrace(
      [
        'user_id time_stamp(seconds) query_length response_length round_index',
        '1 0 10 5 0',
        '1 1 10 5 1',
        '1 2 10 5 0',
      ].join('\n'),
    )
    expect(result.requests.map((r) => [r.conversationId, r.round])).toEqual([
      ['1#1', 0],
      ['1#1', 1],
      ['1#2', 0],
    ])
  })

  it('seed 000: the published whitespace-separated header and a comma-separated variant both work', () => {
    const commas = parseTrace('User_id, Timestamp, Query_length, Response_length, Round_index\n3, 0.5, 10, 4, 0\n')
    expect(commas.format).toBe('conversation')
    expect(commas.requests[0]).toMatchObject({ user: '3', inputTokens: 10, outputTokens: 4, round: 0 })
  })

  it('Azure: 7 fractional digits and offsets are read as UTC date-times', () => {
    const result = parseTrace(
      'TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.1234567,1,1\n2024-05-10T02:00:01+02:00,2,2\n',
    )
    expect(result.requests.map((r) => Math.round(r.arrivalMs * 10) / 10)).toEqual([0, 876.5])
  })

  it('Mooncake: keeps hash ids and rejects a row whose ids do not cover its length', () => {
    const result = parseTrace('{"timestamp": 0, "input_length": 1025, "output_length": 1, "hash_ids": [4, 5, 6]}\n')
    expect(result.requests[0]?.hashIds).toEqual([4, 5, 6])
    expect(() => parseTrace('{"timestamp": 0, "input_length": 1100, "output_length": 1, "hash_ids": [4]}\n')).toThrow(
      /line 1: hash_ids has 1 blocks/,
    )
  })

  it('an unknown first line names the known formats', () => {
    expect(() => parseTrace('a,b,c\n1,2,3\n')).toThrow(/conversation, burstgpt, azure, mooncake/)
  })

  it('a CSV row with the wrong number of fields is malformed, not a crash', () => {
    const result = parseTrace(
      'Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1,ChatGPT,5\n2,ChatGPT,5,5,10,API log\n',
      'auto',
      {
        onMalformed: 'skip',
      },
    )
    expect(result.requests).toHaveLength(1)
    expect(result.skipped).toEqual([{ line: 2, reason: 'expected 6 fields, got 3' }])
  })
})
