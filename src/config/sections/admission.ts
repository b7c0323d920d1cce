import { Type } from 'typebox'
import { atLeast, differentFrom } from '../../core/index.js'
import { headerName } from './identity.js'

export const DEFAULT_HEADROOM_RATIO = 0.05 // 5% of a backend's KV capacity is never handed out
export const DEFAULT_DEADLINE_TICK_MS = 50 // 50 ms between two sweeps for queued items past their deadline
export const DEFAULT_DEADLINE_MS = 30_000 // 30 seconds in the queue before a 429
export const DEFAULT_MAX_DEADLINE_MS = 120_000 // 2 minutes: the most a client header may ask for
export const DEFAULT_DEADLINE_HEADER = 'x-kvgate-deadline-ms'
export const DEFAULT_MAX_QUEUE_LENGTH = 10_000 // requests waiting across all users
export const DEFAULT_MAX_BYPASS_MS = 2_000 // 2 seconds a head may be overtaken by smaller requests
export const DEFAULT_OUTPUT_HINT_HEADER = 'x-kvgate-output-tokens'

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
