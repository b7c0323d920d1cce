import { Type } from 'typebox'
import { atLeast, differentFrom, nullable } from '../../core/index.js'
import { headerName } from './identity.js'

export const DEFAULT_HEADROOM_RATIO = 0.05 // 5% of a backend's KV capacity is never handed out
export const DEFAULT_DEADLINE_TICK_MS = 50 // 50 ms between two sweeps for queued items past their deadline
export const DEFAULT_DEADLINE_MS = 30_000 // 30 seconds in the queue before a 429
export const DEFAULT_MAX_DEADLINE_MS = 120_000 // 2 minutes: the most a client header may ask for
export const DEFAULT_DEADLINE_HEADER = 'x-kvgate-deadline-ms'
export const DEFAULT_MAX_QUEUE_LENGTH = 10_000 // requests waiting across all users
export const DEFAULT_MAX_BYPASS_MS = 2_000 // 2 seconds a head may be overtaken by smaller requests
export const DEFAULT_OUTPUT_HINT_HEADER = 'x-kvgate-output-tokens'
export const RESERVE_BY = ['final', 'peak'] as const
export const DEFAULT_RESERVE_BY = 'peak'
export const DEFAULT_OVERCOMMIT_RATIO = 0 // share of reserved future growth lent out; 0 = none
export const DEFAULT_OVERCOMMIT_REQUESTS = 0 // requests sent beyond the room to wait in vLLM's own queue
export const DEFAULT_OVERCOMMIT_MAX_BACKEND_WAITING = 0 // lend only while the backend's own queue is empty

/** The admission queue's tuning and the per-request deadline fields. */
export const admissionSection = Type.Object(
  {
    headroomRatio: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: DEFAULT_HEADROOM_RATIO }),
    deadlineTickMs: Type.Integer({ minimum: 1, default: DEFAULT_DEADLINE_TICK_MS }),
    defaultDeadlineMs: Type.Integer({ minimum: 1, default: DEFAULT_DEADLINE_MS }),
    maxDeadlineMs: Type.Integer({ minimum: 1, default: DEFAULT_MAX_DEADLINE_MS }),
    deadlineHeader: headerName(DEFAULT_DEADLINE_HEADER),
    maxQueueLength: Type.Integer({ minimum: 0, default: DEFAULT_MAX_QUEUE_LENGTH }),
    earlyReject: Type.Boolean({ default: true }),
    maxBypassMs: Type.Integer({ minimum: 0, default: DEFAULT_MAX_BYPASS_MS }),
    /** Count prompts with a backend's `/tokenize` (exact for its tokenizer) instead of the local estimate. */
    exactPromptTokens: Type.Boolean({ default: false }),
    /**
     * The client's own output-length hint (tokens per sequence, bounded by `max_tokens`), read only for users
     * with `trustOutputHint`; from anyone else it is ignored. Never forwarded upstream.
     */
    outputHintHeader: headerName(DEFAULT_OUTPUT_HINT_HEADER),
    /**
     * How reservations count against a backend's room: `final` holds each one's whole final size (prompt +
     * predicted output) from admission; `peak` counts the running set by the peak of its future occupancy
     * (requests end at different times, and output fills one token per step). src/admission/room-rules.ts.
     */
    reserveBy: Type.Enum(RESERVE_BY, { default: DEFAULT_RESERVE_BY }),
    /**
     * A time-to-first-token SLO (ms) that drives admission: each request's queue deadline becomes the smaller
     * of its own and the SLO less the expected time from admission to its first token (measured), and early
     * rejection turns away at once what cannot meet it. null = the queue deadline alone.
     */
    ttftSloMs: nullable(Type.Integer({ minimum: 1 }), { default: null }),
    /** Lend a share of the reserved-but-not-yet-generated KV while the backend's own queue is short. */
    overcommit: Type.Object(
      {
        ratio: Type.Number({ minimum: 0, maximum: 1, default: DEFAULT_OVERCOMMIT_RATIO }),
        requests: Type.Integer({ minimum: 0, default: DEFAULT_OVERCOMMIT_REQUESTS }),
        maxBackendWaiting: Type.Integer({ minimum: 0, default: DEFAULT_OVERCOMMIT_MAX_BACKEND_WAITING }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  {
    additionalProperties: false,
    default: {},
    crossField: [
      // A client may ask for less than the default deadline, never more than the cap.
      atLeast('maxDeadlineMs', 'defaultDeadlineMs'),
      // One header cannot carry both a deadline and an output length.
      differentFrom('outputHintHeader', 'deadlineHeader'),
    ],
  },
)
