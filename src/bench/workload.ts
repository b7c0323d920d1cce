/**
 * What the bench replays. Every input format (traces, vLLM's conversation JSON, ShareGPT, the built-in
 * generator) becomes one of two shapes:
 * - a trace: requests with arrival times, replayed open-loop (each request is sent at its time, whatever
 *   happened to the previous ones), as the trace's own users sent them;
 * - conversations: turns sent closed-loop by `--num-clients` clients, each waiting for the answer before the
 *   next turn, as vLLM's multi-turn benchmark does.
 */
export interface TraceRequest {
  /** Milliseconds since the trace's first request (already time-scaled when replayed). */
  arrivalMs: number
  /** The user the trace names; synthesised (Zipf) when the trace has none. */
  user?: string
  /**
   * Prompt tokens. For single-turn traces the whole prompt; for a conversation round (`conversationId` set)
   * only the new user turn, since the history of earlier rounds is sent with it.
   */
  inputTokens: number
  /** Exact completion tokens asked for (`max_tokens` = `min_tokens`, `ignore_eos`). */
  outputTokens: number
  /** Rounds of one conversation share this id; their prompts grow by the earlier turns. */
  conversationId?: string
  /** 0-based round within the conversation. */
  round?: number
  /** Mooncake: ids of the prompt's 512-token blocks; equal ids mean an equal prefix block. */
  hashIds?: readonly number[]
  /** 1-based line in the source file, for error messages and the per-request export. */
  line?: number
}

/** One turn of a closed-loop conversation: the user's message and the answer length asked for. */
export interface ConversationTurn {
  /** Literal user text (ShareGPT), or undefined to synthesise `userTokens` tokens. */
  userText?: string
  userTokens: number
  /** Completion tokens asked for in this turn. */
  outputTokens: number
}

export interface Conversation {
  id: string
  user?: string
  /** Tokens added at the start of the first user turn only (vLLM's `prefix_num_tokens`). */
  prefixTokens: number
  turns: ConversationTurn[]
}

export type Workload =
  | {
      kind: 'trace'
      format: string
      requests: TraceRequest[]
      skipped: MalformedRow[]
      /** Set when `--user-sample-ratio` kept a share of the users. */
      userSample?: UserSampleFigures
    }
  | {
      kind: 'conversations'
      format: string
      conversations: Conversation[]
      /** Tokens of a prefix every conversation's first turn starts with (vLLM's `common_prefix_num_tokens`). */
      commonPrefixTokens: number
      skipped: MalformedRow[]
      userSample?: UserSampleFigures
    }

/** What `--user-sample-ratio` kept, for the summary. */
export interface UserSampleFigures {
  ratio: number
  seed: number
  users: number
  usersKept: number
  /** Requests (traces) or conversations (conversation inputs) before and after sampling. */
  requests: number
  requestsKept: number
  /** Arrivals per second of the whole trace (time-scaled) and of what is replayed after sampling and cuts. */
  arrivalRateBefore?: number
  arrivalRate?: number
}

/** A row that could not be read, kept so the run can report what it skipped. */
export interface MalformedRow {
  line: number
  reason: string
}

/** Size of a Mooncake hash block in tokens, as the Mooncake trace defines it. */
export const MOONCAKE_BLOCK_TOKENS = 512
