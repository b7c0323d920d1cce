import { createHash } from 'node:crypto'
import { toPolicyUser, type IdentitySource, type KvgateConfig } from '../config/index.js'
import { errors } from '../errors/index.js'
import type { PolicyUser } from '../policies/index.js'

/** What identified a request: one of the configured sources, or nothing (the anonymous fallback). */
export type IdentitySourceUsed = IdentitySource | 'anonymous'

export interface Identity {
  /** The user as policies see it: a configured user, or an unknown name with the default user's settings. */
  readonly user: PolicyUser
  /** The bounded metric label: a configured user's name, the anonymous user, or `other`. */
  readonly label: string
  readonly source: IdentitySourceUsed
  /** The operator trusts this user's output-length hint (`trustOutputHint`, its own or the default user's). */
  readonly trustsOutputHint: boolean
}

/** The parts of a request identity reads; the proxy extracts them so this module knows nothing of HTTP. */
export interface IdentityInput {
  readonly authorization?: string | undefined
  /** The trusted header's value (`identity.header`). */
  readonly headerValue?: string | string[] | undefined
  /** The body's `user` field, whatever type the client sent. */
  readonly bodyUser?: unknown
}

/** What the request's API key says, checked before its body is read: the user the key names, if any. */
export interface KeyCheck {
  readonly keyUser: string | undefined
}

export interface IdentityResolver {
  /**
   * The key alone, for the request gate: throws `missing_api_key` / `invalid_api_key` (401) when auth is
   * required and not given; otherwise the user the key names (undefined for none or an unknown key).
   */
  authenticate(authorization: string | undefined): KeyCheck
  /** Who the request belongs to, from a key already checked and the header and body (when trusted). */
  identify(key: KeyCheck, input: Omit<IdentityInput, 'authorization'>): Identity
  /** `authenticate` then `identify`: throws `invalid_api_key` / `missing_api_key` (401) when auth is required. */
  resolve(input: IdentityInput): Identity
  /** Whether the header and the body's `user` may name the user (`identity.trustHeader`, resolved). */
  readonly trustsHeader: boolean
  /** The metric label for a user name (bounded cardinality). */
  labelFor(userName: string): string
  /** Every label this resolver can produce, for pre-registering metric series. */
  labels(): string[]
  /** Configured users (and the anonymous user) with their settings, for building policies. */
  users(): PolicyUser[]
}

export const OTHER_USER_LABEL = 'other'

// An unknown name from a header or body becomes a policy user of its own (so fairness sees it) but never a
// label; capping its length bounds what one request can make the gateway store.
const MAX_FOREIGN_NAME_LENGTH = 64

/**
 * Headers that carry a client's API key: OpenAI's `Authorization: Bearer`, and Azure OpenAI's `api-key` (with
 * the common `x-api-key` variant). kvgate reads only the first, but none of them may reach the upstream
 * unless `identity.forwardApiKey` says so.
 */
export const API_KEY_HEADERS: readonly string[] = Object.freeze(['authorization', 'api-key', 'x-api-key'])

function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match?.[1]
}

/** Keys are looked up by digest: the map holds no key, and a lookup's time does not depend on the key's text. */
const digest = (key: string): string => createHash('sha256').update(key).digest('hex')

function cleanName(value: unknown): string | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (typeof raw !== 'string') return undefined
  const name = raw.trim().slice(0, MAX_FOREIGN_NAME_LENGTH)
  return name.length > 0 ? name : undefined
}

/**
 * Who a request belongs to, from the identity config: an API key mapped to a user, the trusted header, or the
 * body's `user` field, tried in `identity.order`; else the anonymous user. The header and the body count only
 * when `identity.trustHeader` says so (by default: only while no API key is configured, since otherwise a
 * keyless client could name itself alice and get her weight and quota).
 *
 * `requireAuth: true` means every request must carry a configured API key (401 otherwise); the user is still
 * chosen by the order, so a trusted frontend holding one key may name its own users in the header. With
 * `requireAuth: false` an unknown key is ignored rather than refused: OpenAI SDKs always send one
 * (`sk-no-key`), and refusing it would break clients that only use the header.
 */
export function createIdentityResolver(config: KvgateConfig): IdentityResolver {
  const { identity, defaultUser } = config
  const configured = new Map<string, PolicyUser>()
  for (const user of config.users) configured.set(user.name, toPolicyUser(user.name, user))
  if (!configured.has(identity.anonymousUser)) {
    configured.set(identity.anonymousUser, toPolicyUser(identity.anonymousUser, defaultUser))
  }
  const keyToUser = new Map(identity.apiKeys.map((entry) => [digest(entry.key), entry.user]))
  const trustsHeader = identity.trustHeader ?? identity.apiKeys.length === 0
  // A user not in `users` (the anonymous one included) has the default user's settings, this one too.
  const hintTrust = new Map(config.users.map((u) => [u.name, u.trustOutputHint]))
  const trusts = (name: string): boolean => hintTrust.get(name) ?? defaultUser.trustOutputHint

  // The first maxUserLabels configured users get labels; the anonymous user always does.
  const labelled = new Set(config.users.slice(0, config.telemetry.maxUserLabels).map((u) => u.name))
  labelled.add(identity.anonymousUser)

  const userFor = (name: string): PolicyUser => configured.get(name) ?? toPolicyUser(name, defaultUser)
  const labelFor = (name: string): string => (labelled.has(name) ? name : OTHER_USER_LABEL)
  const identify = (name: string, source: IdentitySourceUsed): Identity => ({
    user: userFor(name),
    label: labelFor(name),
    source,
    trustsOutputHint: trusts(name),
  })

  const authenticate = (authorization: string | undefined): KeyCheck => {
    const token = bearerToken(authorization)
    const keyUser = token === undefined || keyToUser.size === 0 ? undefined : keyToUser.get(digest(token))
    if (identity.requireAuth) {
      if (token === undefined) throw errors.missingApiKey()
      if (keyUser === undefined) throw errors.invalidApiKey()
    }
    return { keyUser }
  }
  const identifyFrom = (key: KeyCheck, input: Omit<IdentityInput, 'authorization'>): Identity => {
    for (const source of identity.order) {
      if (source === 'apiKey' && key.keyUser !== undefined) return identify(key.keyUser, source)
      if (!trustsHeader) continue
      if (source === 'header') {
        const name = cleanName(input.headerValue)
        if (name !== undefined) return identify(name, source)
      }
      if (source === 'body') {
        const name = cleanName(input.bodyUser)
        if (name !== undefined) return identify(name, source)
      }
    }
    return identify(identity.anonymousUser, 'anonymous')
  }

  return {
    authenticate,
    identify: identifyFrom,
    resolve: (input) => identifyFrom(authenticate(input.authorization), input),
    trustsHeader,
    labelFor,
    labels: () => [...labelled, OTHER_USER_LABEL],
    users: () => [...configured.values()],
  }
}
