import { Type } from 'typebox'
import { differentFrom, nullable, when } from '../../core/index.js'
import { userName } from './users.js'

export const DEFAULT_IDENTITY_HEADER = 'x-user-id'
export const DEFAULT_ANONYMOUS_USER = 'anonymous'
export const IDENTITY_SOURCES = ['apiKey', 'header', 'body'] as const

/** Headers that carry an API key: naming one as a user or deadline header would turn a key into a user name. */
const KEY_HEADERS = ['authorization', 'api-key', 'x-api-key']

/** A request header kvgate reads (lower case, as Node delivers them). */
export const headerName = (defaultName: string) =>
  Type.String({ pattern: '^[a-z0-9-]+$', not: { enum: KEY_HEADERS }, default: defaultName })

/**
 * Who a request belongs to. An API key may name a user that `users` does not list: that user gets
 * `defaultUser`'s settings under its own name, as a user named by the header does (keys are often issued
 * per person while only a few users need their own weight or quota).
 */
export const identitySection = Type.Object(
  {
    order: Type.Array(Type.Enum(IDENTITY_SOURCES), { uniqueItems: true, default: [...IDENTITY_SOURCES] }),
    header: headerName(DEFAULT_IDENTITY_HEADER),
    requireAuth: Type.Boolean({ default: false }),
    /**
     * Whether the header and the body's `user` may name the user. null (the default): yes when no API key is
     * configured, no when one is (a key would otherwise be worth nothing: anyone could say they are alice).
     */
    trustHeader: nullable(Type.Boolean(), { default: null }),
    forwardApiKey: Type.Boolean({ default: false }),
    anonymousUser: userName({ default: DEFAULT_ANONYMOUS_USER }),
    apiKeys: Type.Array(
      Type.Object(
        { key: Type.String({ minLength: 8, secret: true }), user: userName() },
        { additionalProperties: false },
      ),
      { default: [], uniqueBy: 'key' },
    ),
  },
  {
    additionalProperties: false,
    default: {},
    crossField: [
      // With auth required and no key configured, every request would be a 401.
      when({ requireAuth: true }, { apiKeys: { type: 'array', minItems: 1 }, order: { type: 'array', minItems: 1 } }),
    ],
  },
)

/** Rules across sections, checked on the whole config. */
export const identityRules = [
  // One header cannot be both: the deadline would be read as a user name and the other way round.
  differentFrom('admission.deadlineHeader', 'identity.header'),
  differentFrom('admission.outputHintHeader', 'identity.header'),
]
