import { defineTraceReader, RowCollector } from './trace-reader.js'

/**
 * Seed 000's multi-turn conversation trace: `User_id, Timestamp(seconds), Query_length, Response_length,
 * Round_index`. The published files are whitespace-separated with the header
 * `user_id time_stamp(seconds) query_length response_length round_index`; commas are accepted too.
 * Rounds count from 0 and the query length is the new turn only: a user's rounds are one conversation
 * whose history grows. A round index that does not increase starts a new conversation for that user.
 */
const HEADER = /user_id[\s,]+(time_stamp|timestamp)/i

export const conversationTraceReader = defineTraceReader({
  name: 'conversation',
  description: 'multi-turn trace (seed 000): user_id time_stamp(seconds) query_length response_length round_index',
  detect: (headerLine) => HEADER.test(headerLine),
  createParser(options) {
    const rows = new RowCollector('conversation', options)
    // Per user: the last round seen and how many conversations they have started.
    const users = new Map<string, { lastRound: number; conversations: number }>()
    let sawHeader = false
    return {
      finish: () => rows.finish(),
      push(content, line) {
        if (!sawHeader && HEADER.test(content)) {
          sawHeader = true
          return
        }
        const fields = content.trim().split(/[\s,]+/)
        if (fields.length !== 5) {
          rows.malformed(
            line,
            `expected 5 fields (user_id time_stamp query_length response_length round_index), got ${fields.length}`,
          )
          return
        }
        const [user, time, query, response, round] = fields as [string, string, string, string, string]
        const seconds = rows.number(time, 'time_stamp')
        const inputTokens = rows.integer(query, 'query_length')
        const outputTokens = rows.integer(response, 'response_length')
        const roundIndex = rows.integer(round, 'round_index')
        const bad = [seconds, inputTokens, outputTokens, roundIndex].find((v) => typeof v === 'string')
        if (typeof bad === 'string') {
          rows.malformed(line, bad)
          return
        }
        let state = users.get(user)
        if (state === undefined || (roundIndex as number) <= state.lastRound) {
          state = { lastRound: -1, conversations: (state?.conversations ?? 0) + 1 }
          users.set(user, state)
        }
        state.lastRound = roundIndex as number
        rows.add({
          arrivalMs: (seconds as number) * 1000,
          user,
          inputTokens: inputTokens as number,
          outputTokens: outputTokens as number,
          conversationId: `${user}#${state.conversations}`,
          round: roundIndex as number,
          line,
        })
      },
    }
  },
})
