import type { Random } from '../core/index.js'
import { errors } from '../errors/index.js'
import type { TokenCounter } from '../tokens/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createDistribution } from './distributions.js'
import { asLegacyRandom } from './mt19937.js'
import type { Conversation } from './workload.js'

/**
 * vLLM's `generate_conversations` JSON (benchmarks/multi_turn/generate_multi_turn.json): `num_conversations`,
 * `prompt_input` {`num_turns`, `prefix_num_tokens`, `num_tokens`, optional `common_prefix_num_tokens`} and
 * `prompt_output` {`num_tokens`}, each a distribution, generated as vLLM's `bench_dataset.generate_conversations`
 * does. Given numpy's generator (`createNumpyRandomState(seed)`, what `np.random.seed(seed)` sets up) the draws
 * are vLLM's own, in its order: the turn counts of every conversation, their prefix lengths, the common prefix,
 * then per conversation `nturns` user lengths and `nturns` answer lengths (the user and assistant positions used).
 * `num_turns` counts user and assistant messages: raised to 2 and rounded up to even.
 *
 * vLLM cuts the text from a book (`text_files`); kvgate synthesises it to the same token counts, counted by
 * kvgate's tokenizer, so the structure of vLLM's prompts is kept rather than its bytes:
 * - every user turn holds `"{id} is a nice number... "` and the base prompt `"Please rewrite the following text
 *   and add more content: "`, and is at least as long as those (vLLM's floor), else exactly `num_tokens`;
 * - the common prefix counts within the first turn's `num_tokens`; the conversation's own prefix comes on top.
 * Not modelled (a few tokens on each first turn): the `"{id}, "` vLLM puts before the conversation's prefix, and
 * its common prefix being one token short (`decode(tokens[: n − 2]) + "."`).
 */
export interface GeneratedConversations {
  conversations: Conversation[]
  /** Tokens of the prefix shared by every conversation's first turn. */
  commonPrefixTokens: number
}

/** The prompt vLLM's generator puts in every user turn. */
export const VLLM_BASE_PROMPT = 'Please rewrite the following text and add more content: '

export function generateConversations(
  spec: Record<string, unknown>,
  random: Random,
  source: string,
  counter: TokenCounter = createWordPieceTokenCounter(),
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
  // One numpy state for every distribution, as vLLM's global np.random (the polar method's spare normal
  // carries over from one distribution to the next).
  const state = asLegacyRandom(random)
  const dist = (section: Record<string, unknown>, name: string, where: string, optional = false) => {
    if (optional && section[name] === undefined)
      return createDistribution({ distribution: 'constant', value: 0 }, state, where)
    if (section[name] === undefined) throw errors.invalidWorkload([source, `missing ${where}`])
    return createDistribution(section[name], state, `${source}: ${where}`)
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
  const common = Math.max(0, Math.round(commonPrefix.sample(1)[0] ?? 0))
  const basePrompt = counter.count(VLLM_BASE_PROMPT)
  const conversations: Conversation[] = []
  for (let c = 0; c < count; c++) {
    const messages = turnCounts[c] as number
    const ins = inputTokens.sample(messages).map((n) => Math.max(n, basePrompt))
    const outs = outputTokens.sample(messages).map((n) => Math.max(n, 1))
    const marker = counter.count(`${c} is a nice number... `)
    const turns = []
    for (let m = 0; m < messages; m += 2) {
      // The common prefix, the marker and the base prompt count within num_tokens; text fills up the rest.
      const fixed = (m === 0 ? common : 0) + marker + basePrompt
      const content = Math.max(Math.round(ins[m] ?? 1), fixed) - (m === 0 ? common : 0)
      turns.push({ userTokens: Math.max(1, content), outputTokens: Math.max(1, Math.round(outs[m + 1] ?? 1)) })
    }
    conversations.push({ id: `conv-${c}`, prefixTokens: Math.max(0, Math.round(prefixes[c] ?? 0)), turns })
  }
  return { conversations, commonPrefixTokens: common }
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
