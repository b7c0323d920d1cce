import { Type } from 'typebox'
import { nullable } from '../../core/index.js'

/**
 * A model a backend serves, when configured rather than read from its `/v1/models`: a name, or a name with
 * its context length (`maxModelLen`, null = unknown: the gateway then leaves the context check to vLLM).
 */
const configuredModel = Type.Union([
  Type.String({ minLength: 1, maxLength: 256 }),
  Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 256 }),
      // No default: defaults inside a union are not applied (and Ajv's strict mode refuses them).
      maxModelLen: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
    },
    { additionalProperties: false },
  ),
])

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
      /**
       * The models it serves (its pool memberships); null reads them from its `/v1/models`, LoRA adapters
       * included, every `models.refreshIntervalMs`.
       */
      models: nullable(Type.Array(configuredModel, { minItems: 1, maxItems: 1024 }), { default: null }),
      /** Admit nothing new there; requests already running finish. Applied on reload without a restart. */
      drain: Type.Boolean({ default: false }),
    },
    { additionalProperties: false },
  ),
  { default: [], uniqueBy: ['name', 'url'] },
)
