/**
 * The one schema of kvgate's YAML. Defaults sit beside it with their units; the names carry units too
 * (`intervalMs`, `headroomRatio`), so a value never needs a comment to be read right.
 */

// server
export const DEFAULT_HOST = '0.0.0.0'
export const DEFAULT_PORT = 8080
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000 // 30 seconds for streams to finish after SIGTERM

// metricsPoll
export const DEFAULT_POLL_INTERVAL_MS = 100 // 100 ms between two polls of a backend's /metrics
export const DEFAULT_POLL_TIMEOUT_MS = 1_000 // 1 second for headers and body of one poll
export const DEFAULT_STALE_AFTER_MS = 1_000 // 1 second without a good poll takes a backend out of admission

// forwarding
export const DEFAULT_FORWARD_HEADERS_TIMEOUT_MS = 600_000 // 10 minutes: a non-streaming answer's headers come when it is complete
export const DEFAULT_FORWARD_IDLE_TIMEOUT_MS = 120_000 // 2 minutes without a byte of an admitted response: the backend is wedged

// admission
export const DEFAULT_HEADROOM_RATIO = 0.05 // 5% of a backend's KV capacity is never handed out
export const DEFAULT_DEADLINE_TICK_MS = 50 // 50 ms between two sweeps for queued items past their deadline
export const DEFAULT_DEADLINE_MS = 30_000 // 30 seconds in the queue before a 429
export const DEFAULT_MAX_DEADLINE_MS = 120_000 // 2 minutes: the most a client header may ask for
export const DEFAULT_DEADLINE_HEADER = 'x-kvgate-deadline-ms'
export const DEFAULT_MAX_QUEUE_LENGTH = 10_000 // requests waiting across all users
export const DEFAULT_MAX_BYPASS_MS = 2_000 // 2 seconds a head may be overtaken by smaller requests

// predictor
export const DEFAULT_QUANTILE = 0.9 // P90 of observed completion lengths
export const DEFAULT_WINDOW_SIZE = 1_000 // completions remembered per model
export const DEFAULT_COLD_START_OUTPUT_TOKENS = 256 // prediction before minSamples completions were seen
export const DEFAULT_MIN_SAMPLES = 20 // completions per model before the quantile is trusted

// identity
export const DEFAULT_IDENTITY_HEADER = 'x-user-id'
export const DEFAULT_ANONYMOUS_USER = 'anonymous'

// telemetry
export const DEFAULT_MAX_USER_LABELS = 100 // configured users that get their own metric label
export const DEFAULT_LOG_LEVEL = 'info'

export const IDENTITY_SOURCES = ['apiKey', 'header', 'body'] as const
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const positiveMs = { type: 'integer', minimum: 1 } as const
const nullableCount = { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }] } as const
const userName = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@:-]+$' } as const

/**
 * JSON Schema (draft-07, as ajv 8 reads it by default). `additionalProperties: false` everywhere, so a typo
 * such as `intervalMS` is an error naming the field instead of a silently ignored setting.
 */
export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', minLength: 1, default: DEFAULT_HOST },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: DEFAULT_PORT },
        shutdownGraceMs: { type: 'integer', minimum: 0, default: DEFAULT_SHUTDOWN_GRACE_MS },
      },
    },
    backends: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['url'],
        properties: {
          url: { type: 'string', pattern: '^https?://[^\\s/]+(/.*)?$' },
          name: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' },
          capacityTokens: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }], default: null },
        },
      },
    },
    metricsPoll: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        intervalMs: { ...positiveMs, default: DEFAULT_POLL_INTERVAL_MS },
        timeoutMs: { ...positiveMs, default: DEFAULT_POLL_TIMEOUT_MS },
        staleAfterMs: { ...positiveMs, default: DEFAULT_STALE_AFTER_MS },
      },
    },
    forwarding: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        headersTimeoutMs: { ...positiveMs, default: DEFAULT_FORWARD_HEADERS_TIMEOUT_MS },
        idleTimeoutMs: { ...positiveMs, default: DEFAULT_FORWARD_IDLE_TIMEOUT_MS },
      },
    },
    admission: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        headroomRatio: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: DEFAULT_HEADROOM_RATIO },
        deadlineTickMs: { ...positiveMs, default: DEFAULT_DEADLINE_TICK_MS },
        defaultDeadlineMs: { ...positiveMs, default: DEFAULT_DEADLINE_MS },
        maxDeadlineMs: { ...positiveMs, default: DEFAULT_MAX_DEADLINE_MS },
        deadlineHeader: { type: 'string', pattern: '^[a-z0-9-]+$', default: DEFAULT_DEADLINE_HEADER },
        maxQueueLength: { type: 'integer', minimum: 0, default: DEFAULT_MAX_QUEUE_LENGTH },
        earlyReject: { type: 'boolean', default: true },
        maxBypassMs: { type: 'integer', minimum: 0, default: DEFAULT_MAX_BYPASS_MS },
        exactPromptTokens: { type: 'boolean', default: false },
      },
    },
    predictor: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        quantile: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: DEFAULT_QUANTILE },
        windowSize: { type: 'integer', minimum: 1, default: DEFAULT_WINDOW_SIZE },
        coldStartOutputTokens: { type: 'integer', minimum: 1, default: DEFAULT_COLD_START_OUTPUT_TOKENS },
        minSamples: { type: 'integer', minimum: 1, default: DEFAULT_MIN_SAMPLES },
      },
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        order: {
          type: 'array',
          items: { enum: [...IDENTITY_SOURCES] },
          uniqueItems: true,
          default: [...IDENTITY_SOURCES],
        },
        header: { type: 'string', pattern: '^[a-z0-9-]+$', default: DEFAULT_IDENTITY_HEADER },
        requireAuth: { type: 'boolean', default: false },
        forwardApiKey: { type: 'boolean', default: false },
        anonymousUser: { ...userName, default: DEFAULT_ANONYMOUS_USER },
        apiKeys: {
          type: 'array',
          default: [],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['key', 'user'],
            properties: { key: { type: 'string', minLength: 8 }, user: userName },
          },
        },
      },
    },
    users: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: userName,
          weight: { type: 'number', exclusiveMinimum: 0, default: 1 },
          tokensPerMinute: { ...nullableCount, default: null },
          requestsPerMinute: { ...nullableCount, default: null },
        },
      },
    },
    defaultUser: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        weight: { type: 'number', exclusiveMinimum: 0, default: 1 },
        tokensPerMinute: { ...nullableCount, default: null },
        requestsPerMinute: { ...nullableCount, default: null },
      },
    },
    policy: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        name: { type: 'string', minLength: 1, default: 'fifo' },
        // Each policy validates its own options when it is built (see load-config.ts).
        options: { type: 'object', default: {} },
      },
    },
    telemetry: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxUserLabels: { type: 'integer', minimum: 0, default: DEFAULT_MAX_USER_LABELS },
        logLevel: { enum: [...LOG_LEVELS], default: DEFAULT_LOG_LEVEL },
      },
    },
  },
} as const

export type IdentitySource = (typeof IDENTITY_SOURCES)[number]
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface BackendConfig {
  readonly url: string
  /** Unique name; the `backend` metric label. Defaults to `vllm-<index>`. */
  readonly name: string
  /** KV capacity in tokens; null reads it from `vllm:cache_config_info`. */
  readonly capacityTokens: number | null
}

export interface UserConfig {
  readonly name: string
  readonly weight: number
  readonly tokensPerMinute: number | null
  readonly requestsPerMinute: number | null
}

export interface KvgateConfig {
  readonly server: { readonly host: string; readonly port: number; readonly shutdownGraceMs: number }
  /** Empty: the gateway starts the built-in emulator in-process. */
  readonly backends: readonly BackendConfig[]
  readonly metricsPoll: { readonly intervalMs: number; readonly timeoutMs: number; readonly staleAfterMs: number }
  /**
   * Limits on an admitted request's upstream call. Without them a backend that stops answering (while its
   * /metrics still does) would hold the request, and its KV reservation, until the client gave up.
   */
  readonly forwarding: { readonly headersTimeoutMs: number; readonly idleTimeoutMs: number }
  readonly admission: {
    readonly headroomRatio: number
    readonly deadlineTickMs: number
    readonly defaultDeadlineMs: number
    readonly maxDeadlineMs: number
    readonly deadlineHeader: string
    readonly maxQueueLength: number
    readonly earlyReject: boolean
    readonly maxBypassMs: number
    /** Count prompts with a backend's `/tokenize` (exact for its tokenizer) instead of the local estimate. */
    readonly exactPromptTokens: boolean
  }
  readonly predictor: {
    readonly quantile: number
    readonly windowSize: number
    readonly coldStartOutputTokens: number
    readonly minSamples: number
  }
  readonly identity: {
    readonly order: readonly IdentitySource[]
    readonly header: string
    readonly requireAuth: boolean
    readonly forwardApiKey: boolean
    readonly anonymousUser: string
    readonly apiKeys: readonly { readonly key: string; readonly user: string }[]
  }
  readonly users: readonly UserConfig[]
  readonly defaultUser: Omit<UserConfig, 'name'>
  readonly policy: { readonly name: string; readonly options: Readonly<Record<string, unknown>> }
  readonly telemetry: { readonly maxUserLabels: number; readonly logLevel: LogLevel }
}
