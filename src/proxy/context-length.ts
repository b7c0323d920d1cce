import { errors } from '../errors/index.js'
import type { GenerationRequest } from './generating-route.js'

/**
 * vLLM's own context check, made at the gateway so a request vLLM would refuse never takes a queue slot or a
 * reservation (vllm/entrypoints/openai/serving_engine.py, `_validate_input`): a prompt of `max_model_len`
 * tokens or more is refused (`param: input_tokens`), and so is `prompt + max_tokens > max_model_len`
 * (`param: max_tokens`), each with vLLM's message.
 *
 * An estimated prompt (the local counter, not the backend's tokenizer) is refused only when even its low
 * end, `estimate × (1 − marginRatio)`, fails: a borderline request goes through and vLLM decides. An exact
 * count (token ids, or `/tokenize` with `admission.exactPromptTokens`) has no margin. The message quotes the
 * count kvgate has.
 */
export function checkContextLength(
  request: GenerationRequest,
  maxModelLen: number | undefined,
  marginRatio: number,
): void {
  if (maxModelLen === undefined) return
  const prompt = request.longestPromptTokens ?? Math.ceil(request.promptTokens / Math.max(1, request.sequences))
  const low = request.promptTokensExact === true ? prompt : Math.floor(prompt * (1 - marginRatio))
  if (low >= maxModelLen) {
    throw errors.promptExceedsContext([maxModelLen, prompt], { param: 'input_tokens' })
  }
  const maxTokens = request.maxTokens
  if (maxTokens !== undefined && low + maxTokens > maxModelLen) {
    throw errors.maxTokensExceedContext([maxTokens, maxModelLen, prompt, maxTokens, maxModelLen, prompt], {
      param: 'max_tokens',
    })
  }
}
