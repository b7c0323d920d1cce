import { Type, type TSchemaOptions } from 'typebox'
import { nullable } from '../../core/index.js'

/** `[A-Za-z0-9_.@:-]`, at most 64 characters: user names become metric labels and log fields. */
export const userName = (options: TSchemaOptions = {}) =>
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@:-]+$', ...options })

const quota = () => nullable(Type.Integer({ minimum: 1 }), { default: null })

/** A user's share and quotas; `null` = no quota. */
const userSettings = {
  /** Share relative to other users (vtc, dynamic-tpm). */
  weight: Type.Number({ exclusiveMinimum: 0, default: 1 }),
  /** Prompt + completion tokens per minute (tpm). */
  tokensPerMinute: quota(),
  requestsPerMinute: quota(),
  /**
   * Trust this user's output-length hint (`admission.outputHintHeader`): its reservation is the hinted length
   * (capped by `max_tokens`) instead of the predictor's. For batch jobs and external predictors the operator
   * vouches for; a hint from anyone else is ignored.
   */
  trustOutputHint: Type.Boolean({ default: false }),
}

export const usersSection = Type.Array(
  Type.Object({ name: userName(), ...userSettings }, { additionalProperties: false }),
  { default: [], uniqueBy: 'name' },
)

/** What a user not in `users` gets, under its own name. */
export const defaultUserSection = Type.Object(userSettings, { additionalProperties: false, default: {} })
