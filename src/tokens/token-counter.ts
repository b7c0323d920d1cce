/**
 * The contract every part of kvgate uses to turn text into tokens: the emulator to size KV blocks and
 * answer `/tokenize`, the gateway to estimate a prompt's need, the bench to build a prompt of exactly N
 * tokens. They must agree, so there is one implementation shared by all (see `word-piece.ts`); a real
 * tokenizer can be plugged in behind the same interface.
 */
export interface TokenCounter {
  readonly name: string
  /** Token ids of `text`. */
  encode(text: string): number[]
  /** Number of tokens in `text`; equal to `encode(text).length`, without building the array. */
  count(text: string): number
  /** Text of `ids`; `decode(encode(t))` equals `t` up to whitespace normalisation. */
  decode(ids: readonly number[]): string
  /** The prompt a chat request becomes after the chat template is applied. */
  renderChat(messages: readonly ChatMessage[], addGenerationPrompt?: boolean): string
  /** Tokens in the rendered chat prompt. */
  countChat(messages: readonly ChatMessage[], addGenerationPrompt?: boolean): number
}

/** The parts of an OpenAI chat message that become prompt tokens. Unknown fields are ignored. */
export interface ChatMessage {
  role: string
  content?: string | readonly ChatContentPart[] | null
  [extra: string]: unknown
}

export interface ChatContentPart {
  type: string
  text?: string
  [extra: string]: unknown
}
