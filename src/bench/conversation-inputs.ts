import type { Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { createDistribution } from './distributions.js'
import type { Conversation } from './workload.js'

/**
 * vLLM's `generate_conversations` JSON (benchmarks/multi_turn/generate_multi_turn.json): `num_conversations`,
 * `prompt_input` {`num_turns`, `prefix_num_tokens`, `num_tokens`, optional `common_prefix_num_tokens`} and
 * `prompt_output` {`num_tokens`}, each a distribution. As in vLLM: `num_turns` counts user and assistant
 * messages and is raised to at least 2 and rounded up to even; user turns are at least as long as vLLM's
 * base prompt would be (we have no base prompt, so at least 1 token); answers at least 1 token. `text_files`
 * is ignored: prompts are synthesised to the exact length instead of cut from a book.
 */
export interface GeneratedConversations {
  conversations: Conversation[]
  /** Tokens of the prefix shared by every conversation's first turn. */
  commonPrefixTokens: number
}

export function generateConversations(
  spec: Record<string, unknown>,
  random: Random,
  source: string,
): GeneratedConversations {
  const count = spec['num_conversations']
  if (typeof count !== 'number' || !Number.isInteger(count) || count <= 0) {
    throw errors.invalidWorkload([source, 'num_conversations must be a positive integer'])
  }
  const input = spec['prompt_input'] as Record<string, unknown> | undefined
  const output = spec['prompt_output'] as Record<string, unknown> | undefined
  if (input === undefined || output === undefined) {
    throw errors.invalidWorkload([source, 'needs the sections prompt_input and prompt_output'])
  }
  const dist = (section: Record<string, unknown>, name: string, where: string, optional = false) => {
    if (optional && section[name] === undefined)
      return createDistribution({ distribution: 'constant', value: 0 }, random, where)
    if (section[name] === undefined) throw errors.invalidWorkload([source, `missing ${where}`])
    return createDistribution(section[name], random, `${source}: ${where}`)
  }
  const numTurns = dist(input, 'num_turns', 'prompt_input.num_turns')
  const prefixTokens = dist(input, 'prefix_num_tokens', 'prompt_input.prefix_num_tokens')
  const inputTokens = dist(input, 'num_tokens', 'prompt_input.num_tokens')
  const commonPrefix = dist(input, 'common_prefix_num_tokens', 'prompt_input.common_prefix_num_tokens', true)
  const outputTokens = dist(output, 'num_tokens', 'prompt_output.num_tokens')

  const turnCounts = numTurns.sample(count).map((n) => {
    const atLeastTwo = Math.max(2, Math.round(n))
    return atLeastTwo + (atLeastTwo % 2)
  })
  const prefixes = prefixTokens.sample(count)
  const conversations: Conversation[] = []
  for (let c = 0; c < count; c++) {
    const messages = turnCounts[c] as number
    // vLLM samples `nturns` values of each and uses the user/assistant positions; draw the same amounts.
    const ins = inputTokens.sample(messages)
    const outs = outputTokens.sample(messages)
    const turns = []
    for (let m = 0; m < messages; m += 2) {
      turns.push({
        userTokens: Math.max(1, Math.round(ins[m] ?? 1)),
        outputTokens: Math.max(1, Math.round(outs[m + 1] ?? 1)),
      })
    }
    conversations.push({ id: `conv-${c}`, prefixTokens: Math.max(0, Math.round(prefixes[c] ?? 0)), turns })
  }
  return { conversations, commonPrefixTokens: Math.max(0, Math.round(commonPrefix.sample(1)[0] ?? 0)) }
}

/**
 * ShareGPT conversations in OpenAI message format (what vLLM's `convert_sharegpt_to_openai.py` writes):
 * `[{"id", "messages": [{"role": "user"|"assistant", "content"}]}]`. The raw ShareGPT shape
 * (`conversations: [{"from": "human"|"gpt", "value"}]`) is accepted too. A conversation is its user turns,
 * each answered with as many tokens as the recorded answer (at least 1); a trailing user turn without an
 * answer, system messages and conversations that do not start with a user are dropped and counted.
 */
export function readShareGpt(
  items: readonly unknown[],
  counter: TokenCounter,
  source: string,
): { conversations: Conversation[]; dropped: number } {
  const conversations: Conversation[] = []
  let dropped = 0
  items.forEach((item, index) => {
    if (item === null || typeof item !== 'object') {
      dropped++
      return
    }
    const record = item as Record<string, unknown>
    const raw = (record['messages'] ?? record['conversations']) as unknown
    if (!Array.isArray(raw)) {
      dropped++
      return
    }
    const messages = raw
      .map((m: Record<string, unknown>) => ({
        role:
          m['role'] ??
          ({ human: 'user', gpt: 'assistant', chatgpt: 'assistant', bing: 'assistant' } as Record<string, string>)[
            String(m['from'])
          ] ??
          String(m['from']),
        content: String(m['content'] ?? m['value'] ?? ''),
      }))
      .filter((m) => m.role === 'user' || m.role === 'assistant')
    const turns = []
    for (let i = 0; i + 1 < messages.length; i += 2) {
      const user = messages[i]
      const answer = messages[i + 1]
      if (user?.role !== 'user' || answer?.role !== 'assistant') break
      turns.push({
        userText: user.content,
        userTokens: counter.count(user.content),
        outputTokens: Math.max(1, counter.count(answer.content)),
      })
    }
    if (turns.length === 0) {
      dropped++
      return
    }
    conversations.push({ id: String(record['id'] ?? `sharegpt-${index}`), prefixTokens: 0, turns })
  })
  if (conversations.length === 0)
    throw errors.invalidWorkload([source, 'no usable ShareGPT conversation (user/assistant pairs)'])
  return { conversations, dropped }
}
