import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/index.js'
import type { KvgateError } from '../../src/errors/index.js'
import { createIdentityResolver } from '../../src/identity/index.js'

const base = {
  users: [
    { name: 'alice', weight: 2, tokensPerMinute: 1000 },
    { name: 'bob', weight: 1 },
  ],
  defaultUser: { weight: 0.5, requestsPerMinute: 10 },
  // A trusted frontend naming its users: with keys configured the header and body count only when trusted.
  identity: { apiKeys: [{ key: 'sk-alice-123', user: 'alice' }], trustHeader: true },
}

describe('identity resolution', () => {
  it('maps an API key to its configured user with weight and quotas', () => {
    const resolver = createIdentityResolver(parseConfig(base))
    const identity = resolver.resolve({ authorization: 'Bearer sk-alice-123' })
    expect(identity).toEqual({
      user: { name: 'alice', weight: 2, tokensPerMinute: 1000 },
      label: 'alice',
      trustsOutputHint: false,
      source: 'apiKey',
    })
  })

  it('tries the sources in the configured order', () => {
    const input = { authorization: 'Bearer sk-alice-123', headerValue: 'bob', bodyUser: 'carol' }
    const keyFirst = createIdentityResolver(parseConfig(base))
    expect(keyFirst.resolve(input).user.name).toBe('alice')
    const bodyFirst = createIdentityResolver(
      parseConfig({ ...base, identity: { ...base.identity, order: ['body', 'header'] } }),
    )
    expect(bodyFirst.resolve(input).source).toBe('body')
    expect(bodyFirst.resolve({ ...input, bodyUser: 42 }).user.name).toBe('bob')
  })

  it('ignores the header and the body when keys are configured and trustHeader is left at its default', () => {
    const resolver = createIdentityResolver(
      parseConfig({ ...base, identity: { apiKeys: [{ key: 'sk-alice-123', user: 'alice' }] } }),
    )
    expect(resolver.trustsHeader).toBe(false)
    expect(resolver.resolve({ headerValue: 'alice', bodyUser: 'alice' })).toEqual({
      user: { name: 'anonymous', weight: 0.5, requestsPerMinute: 10 },
      label: 'anonymous',
      trustsOutputHint: false,
      source: 'anonymous',
    })
    expect(resolver.resolve({ authorization: 'Bearer sk-alice-123', headerValue: 'bob' }).user.name).toBe('alice')
    // Without any key the header is the way users are named, as before.
    expect(createIdentityResolver(parseConfig({ users: base.users })).resolve({ headerValue: 'bob' }).source).toBe(
      'header',
    )
  })

  it('gives unknown users the default settings and the bounded label "other"', () => {
    const resolver = createIdentityResolver(parseConfig(base))
    expect(resolver.resolve({ headerValue: 'mallory' })).toEqual({
      user: { name: 'mallory', weight: 0.5, requestsPerMinute: 10 },
      label: 'other',
      trustsOutputHint: false,
      source: 'header',
    })
    expect(resolver.labels().sort()).toEqual(['alice', 'anonymous', 'bob', 'other'])
  })

  it('falls back to the anonymous user, ignoring an unknown key when auth is optional', () => {
    const resolver = createIdentityResolver(parseConfig(base))
    const identity = resolver.resolve({ authorization: 'Bearer sk-no-key' })
    expect(identity.user.name).toBe('anonymous')
    expect(identity.label).toBe('anonymous')
    expect(identity.source).toBe('anonymous')
  })

  it('answers 401 missing_api_key or invalid_api_key when auth is required', () => {
    const resolver = createIdentityResolver(parseConfig({ ...base, identity: { ...base.identity, requireAuth: true } }))
    const attempt = (authorization?: string): KvgateError => {
      try {
        resolver.resolve({ authorization, headerValue: 'bob' })
      } catch (err) {
        return err as KvgateError
      }
      throw new Error('expected a 401')
    }
    expect(attempt().toBody()).toEqual({
      error: {
        message: 'You did not provide an API key. Pass it as "Authorization: Bearer KEY".',
        type: 'authentication_error',
        param: null,
        code: 'missing_api_key',
      },
    })
    expect(attempt('Bearer sk-wrong-000').statusCode).toBe(401)
    expect(attempt('Bearer sk-wrong-000').code).toBe('invalid_api_key')
    expect(resolver.resolve({ authorization: 'Bearer sk-alice-123', headerValue: 'bob' }).user.name).toBe('alice')
  })

  it('bounds labels to maxUserLabels configured users', () => {
    const resolver = createIdentityResolver(parseConfig({ ...base, telemetry: { maxUserLabels: 1 } }))
    expect(resolver.labelFor('alice')).toBe('alice')
    expect(resolver.labelFor('bob')).toBe('other')
    expect(resolver.labelFor('anonymous')).toBe('anonymous')
  })
})
