import { errors } from '../errors/index.js'

/**
 * KV bytes per token of a few well-known model shapes, for the conversation-KV analysis: every layer keeps a
 * key and a value vector per token, each `kvHeads × headDim` wide, so a token costs
 * `layers × kvHeads × headDim × 2 (K, V) × bytesPerElement`. Grouped-query attention (Llama 2 70B, Llama 3,
 * Qwen 2.5) shares each KV head among several query heads, which is why those models cost far less per token
 * than their hidden size suggests. The shapes are the models' published `config.json` values.
 */
export interface KvModelShape {
  name: string
  layers: number
  /** Key/value heads × head dimension: the hidden size for full multi-head attention. */
  kvWidth: number
  /** 2 for fp16/bf16 KV, 1 for an fp8 KV cache. */
  bytesPerElement: number
  /** `num_hidden_layers × num_key_value_heads × head_dim`, as written in the docs' table. */
  derivation: string
}

export const KV_MODELS: readonly KvModelShape[] = [
  { name: 'opt-13b', layers: 40, kvWidth: 5120, bytesPerElement: 2, derivation: '40 layers × 5,120 (40 heads × 128)' },
  { name: 'opt-30b', layers: 48, kvWidth: 7168, bytesPerElement: 2, derivation: '48 layers × 7,168 (56 heads × 128)' },
  {
    name: 'llama-2-7b',
    layers: 32,
    kvWidth: 4096,
    bytesPerElement: 2,
    derivation: '32 layers × 4,096 (32 heads × 128)',
  },
  {
    name: 'llama-2-70b',
    layers: 80,
    kvWidth: 1024,
    bytesPerElement: 2,
    derivation: '80 layers × 1,024 (8 KV heads × 128)',
  },
  {
    name: 'llama-3-8b',
    layers: 32,
    kvWidth: 1024,
    bytesPerElement: 2,
    derivation: '32 layers × 1,024 (8 KV heads × 128)',
  },
  {
    name: 'qwen2.5-7b',
    layers: 28,
    kvWidth: 512,
    bytesPerElement: 2,
    derivation: '28 layers × 512 (4 KV heads × 128)',
  },
]

/** Seed 000's model: OPT-13B in fp16, 800 KiB of KV per token. */
export const DEFAULT_KV_MODEL = 'opt-13b'

export function kvBytesPerToken(shape: KvModelShape): number {
  return shape.layers * shape.kvWidth * 2 * shape.bytesPerElement
}

/** What one token of KV costs, either from a named shape or given directly (`--kv-bytes-per-token`). */
export interface KvCost {
  /** The shape's name, or `custom` when the bytes were given. */
  model: string
  bytesPerToken: number
  derivation?: string
}

export function kvCost(options: { model?: string; bytesPerToken?: number }): KvCost {
  if (options.bytesPerToken !== undefined) {
    if (!Number.isFinite(options.bytesPerToken) || options.bytesPerToken <= 0) {
      throw errors.invalidWorkload(['analysis', '--kv-bytes-per-token must be a number > 0'])
    }
    return { model: 'custom', bytesPerToken: options.bytesPerToken }
  }
  const name = options.model ?? DEFAULT_KV_MODEL
  const shape = KV_MODELS.find((m) => m.name === name)
  if (shape === undefined) {
    throw errors.invalidWorkload([
      'analysis',
      `unknown --kv-model ${JSON.stringify(name)} (known: ${KV_MODELS.map((m) => m.name).join(', ')}; or give --kv-bytes-per-token)`,
    ])
  }
  return {
    model: shape.name,
    bytesPerToken: kvBytesPerToken(shape),
    derivation: `${shape.derivation} × 2 (K, V) × ${shape.bytesPerElement} bytes`,
  }
}
