import { Type } from 'typebox'
import { nullable } from '../../core/index.js'

/**
 * The vLLM servers; empty = the built-in emulator in-process. `name` defaults to `vllm-<index>` (filled by
 * parseConfig before validation, so a defaulted name takes part in the uniqueness rule) and a trailing `/`
 * of `url` is dropped the same way.
 */
export const backendsSection = Type.Array(
  Type.Object(
    {
      url: Type.String({ pattern: '^https?://[^\\s/]+(/.*)?$' }),
      name: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' })),
      /** KV capacity in tokens; null reads it from `vllm:cache_config_info`. */
      capacityTokens: nullable(Type.Integer({ minimum: 1 }), { default: null }),
    },
    { additionalProperties: false },
  ),
  { default: [], uniqueBy: ['name', 'url'] },
)
