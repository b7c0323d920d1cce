import { Type } from 'typebox'

export const DEFAULT_BODY_LIMIT_BYTES = 32 * 1024 * 1024 // 32 MiB: long-context prompts as token ids are large JSON
export const DEFAULT_MAX_JSON_DEPTH = 64 // nesting of arrays and objects; tool schemas rarely pass 20
export const DEFAULT_MAX_JSON_ELEMENTS = 1_000_000 // array items + object members: a 128k-token id prompt is 128k
export const DEFAULT_BODY_TIMEOUT_MS = 30_000 // 30 seconds for a whole request body to arrive
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000 // 10 seconds for a request's head (Node's headersTimeout)

/**
 * What one request may cost kvgate before it is refused. The JSON limits are checked while the body
 * arrives, before `JSON.parse`, so a hostile body costs O(its bytes) and is refused at the byte that breaks
 * a limit: 413 beyond `bodyLimitBytes`, 400 beyond the depth or element count, 408 when it does not arrive
 * within `bodyTimeoutMs`. Read per request, so a reload changes them live (`headersTimeoutMs`: restart).
 */
export const limitsSection = Type.Object(
  {
    bodyLimitBytes: Type.Integer({ minimum: 1024, default: DEFAULT_BODY_LIMIT_BYTES }),
    maxJsonDepth: Type.Integer({ minimum: 2, default: DEFAULT_MAX_JSON_DEPTH }),
    maxJsonElements: Type.Integer({ minimum: 1, default: DEFAULT_MAX_JSON_ELEMENTS }),
    bodyTimeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_BODY_TIMEOUT_MS }),
    headersTimeoutMs: Type.Integer({ minimum: 1, default: DEFAULT_HEADERS_TIMEOUT_MS }),
  },
  { additionalProperties: false, default: {} },
)
