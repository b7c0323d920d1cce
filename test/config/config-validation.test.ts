import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/config/index.js'
import { KvgateError } from '../../src/errors/index.js'

function problemOf(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(KvgateError)
    expect((err as KvgateError).code).toBe('invalid_config')
    return (err as KvgateError).message
  }
  throw new Error('expected an invalid_config error')
}

describe('config validation', () => {
  it('fills every default, with the documented values, and freezes the result', () => {
    const config = parseConfig({})
    expect(config.server).toEqual({ host: '0.0.0.0', port: 8080, shutdownGraceMs: 30000 })
    expect(config.metricsPoll).toEqual({
      intervalMs: 100,
      timeoutMs: 1000,
      staleAfterMs: 1000,
      maxBodyBytes: 4 * 1024 * 1024,
      maxCapacityTokens: 100_000_000,
    })
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9090, token: null })
    expect(config.limits).toEqual({
      bodyLimitBytes: 32 * 1024 * 1024,
      maxJsonDepth: 64,
      maxJsonElements: 1_000_000,
      bodyTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
    })
    expect(config.healthCheck).toEqual({ intervalMs: 2000, timeoutMs: 1000 })
    expect(config.passthrough).toEqual({ allow: [] })
    expect(config.identity.trustHeader).toBeNull()
    expect(config.admission).toEqual({
      headroomRatio: 0.05,
      deadlineTickMs: 50,
      defaultDeadlineMs: 30000,
      maxDeadlineMs: 120000,
      deadlineHeader: 'x-kvgate-deadline-ms',
      maxQueueLength: 10000,
      earlyReject: true,
      maxBypassMs: 2000,
      exactPromptTokens: false,
      outputHintHeader: 'x-kvgate-output-tokens',
      reserveBy: 'peak',
      ttftSloMs: null,
      overcommit: { ratio: 0, requests: 0, maxBackendWaiting: 0 },
    })
    expect(config.predictor).toEqual({
      quantile: 0.9,
      windowSize: 1000,
      coldStartOutputTokens: 1024,
      minSamples: 20,
      userWindowSize: 200,
      userMinSamples: 10,
      stateFile: null,
      stateSaveIntervalMs: 60000,
    })
    expect(config.defaultUser).toEqual({
      weight: 1,
      tokensPerMinute: null,
      requestsPerMinute: null,
      trustOutputHint: false,
    })
    expect(config.identity.order).toEqual(['apiKey', 'header', 'body'])
    expect(config.policy).toEqual({ name: 'fifo', options: {} })
    expect(config.models).toEqual({
      default: null,
      refreshIntervalMs: 30000,
      retryIntervalMs: 1000,
      contextLengthCheck: true,
      estimateMarginRatio: 0.25,
    })
    expect(config.routing).toEqual({ name: 'most-room', options: {} })
    expect(config.backends).toEqual([])
    expect(Object.isFrozen(config.server)).toBe(true)
    expect(Object.isFrozen(config.identity.order)).toBe(true)
  })

  it('takes only normalised paths kvgate does not route itself in passthrough.allow', () => {
    expect(
      parseConfig({ passthrough: { allow: ['/v1/audio/transcriptions', '/v1/responses/*'] } }).passthrough.allow,
    ).toEqual(['/v1/audio/transcriptions', '/v1/responses/*'])
    const message = problemOf(() =>
      parseConfig({
        passthrough: { allow: ['/v1/chat/completions', 'v1/x', '/a/../b', '/a//b', '/a/', '/v1/models'] },
      }),
    )
    for (const i of [0, 1, 2, 3, 4, 5]) expect(message).toContain(`passthrough.allow.${i}:`)
  })

  it('keeps the admin token secret in its errors', () => {
    const message = problemOf(() => parseConfig({ admin: { token: 'short' } }))
    expect(message).toContain('admin.token: must NOT have fewer than 16 characters')
    expect(message).not.toContain('short')
  })

  it('names backends by index and trims a trailing slash', () => {
    const config = parseConfig({ backends: [{ url: 'http://127.0.0.1:8000/' }, { url: 'http://b:1', name: 'gpu' }] })
    expect(config.backends).toEqual([
      { url: 'http://127.0.0.1:8000', name: 'vllm-0', capacityTokens: null, models: null, drain: false },
      { url: 'http://b:1', name: 'gpu', capacityTokens: null, models: null, drain: false },
    ])
  })

  it('names the field and the reason for a wrong type, an unknown field and a bad enum', () => {
    const message = problemOf(() =>
      parseConfig({ server: { port: 'x', prot: 1 }, telemetry: { logLevel: 'loud' }, identity: { order: ['cookie'] } }),
    )
    expect(message).toContain('server.port: must be integer')
    expect(message).toContain('server.prot: unknown field')
    expect(message).toContain('telemetry.logLevel: must be one of')
    expect(message).toContain('identity.order.0: must be one of "apiKey", "header", "body"')
  })

  it('refuses a missing backend url, duplicates and an inverted deadline pair', () => {
    expect(problemOf(() => parseConfig({ backends: [{ name: 'a' }] }))).toContain('backends.0.url: is required')
    expect(problemOf(() => parseConfig({ users: [{ name: 'a' }, { name: 'a' }] }))).toContain(
      'users.1.name: duplicate of users.0.name ("a")',
    )
    expect(problemOf(() => parseConfig({ admission: { defaultDeadlineMs: 5000, maxDeadlineMs: 1000 } }))).toContain(
      'admission.maxDeadlineMs: must be >= admission.defaultDeadlineMs',
    )
  })

  it('lists the valid policies for an unknown one', () => {
    expect(problemOf(() => parseConfig({ policy: { name: 'lottery' } }))).toMatch(
      /policy\.name: unknown policy "lottery" \(valid: fifo/,
    )
  })

  it('reads YAML, then the environment, then overrides, and names the file in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-config-'))
    const path = join(dir, 'kvgate.yaml')
    writeFileSync(path, 'server:\n  port: 9000\n  host: 127.0.0.1\npolicy:\n  name: fifo\n')
    const env = { KVGATE_PORT: '9100', KVGATE_BACKENDS: 'http://a:1, http://b:2', KVGATE_LOG_LEVEL: 'warn' }
    const config = loadConfig(path, { server: { host: '::1' } }, env)
    expect(config.server.port).toBe(9100)
    expect(config.server.host).toBe('::1')
    expect(config.backends.map((b) => b.url)).toEqual(['http://a:1', 'http://b:2'])
    expect(config.telemetry.logLevel).toBe('warn')

    writeFileSync(path, 'server:\n  port: 70000\n')
    const message = problemOf(() => loadConfig(path, {}, {}))
    expect(message).toContain(path)
    expect(message).toContain('server.port: must be <= 65535')

    writeFileSync(path, 'server: [unclosed\n')
    expect(problemOf(() => loadConfig(path, {}, {}))).toContain('not valid YAML')
    expect(problemOf(() => loadConfig(undefined, {}, { KVGATE_PORT: 'abc' }))).toContain('KVGATE_PORT')
  })
})

describe('cross-field rules, in the schema', () => {
  it('refuses a predictor window smaller than minSamples, whichever of the two the file set', () => {
    expect(problemOf(() => parseConfig({ predictor: { windowSize: 10 } }))).toBe(
      'Invalid configuration: predictor.windowSize: must be >= predictor.minSamples (20)',
    )
    expect(problemOf(() => parseConfig({ predictor: { minSamples: 5000 } }))).toBe(
      'Invalid configuration: predictor.windowSize: must be >= predictor.minSamples (5000)',
    )
    expect(parseConfig({ predictor: { windowSize: 20 } }).predictor.windowSize).toBe(20)
    // A bad minSamples is reported once, on its own, not again as a comparison with a string.
    expect(problemOf(() => parseConfig({ predictor: { windowSize: 10, minSamples: 'x' } }))).toBe(
      'Invalid configuration: predictor.minSamples: must be integer',
    )
  })

  it('refuses metrics that go stale between two polls, and a default deadline above the cap', () => {
    expect(problemOf(() => parseConfig({ metricsPoll: { intervalMs: 1000 } }))).toBe(
      'Invalid configuration: metricsPoll.staleAfterMs: must be > metricsPoll.intervalMs (1000)',
    )
    expect(problemOf(() => parseConfig({ admission: { maxDeadlineMs: 10_000 } }))).toBe(
      'Invalid configuration: admission.maxDeadlineMs: must be >= admission.defaultDeadlineMs (30000)',
    )
    expect(parseConfig({ metricsPoll: { intervalMs: 500, timeoutMs: 5000 } }).metricsPoll.staleAfterMs).toBe(1000)
  })

  it('refuses required auth with no key to authenticate with', () => {
    expect(problemOf(() => parseConfig({ identity: { requireAuth: true } }))).toBe(
      'Invalid configuration: identity.apiKeys: must not be empty (when identity.requireAuth is true)',
    )
    expect(problemOf(() => parseConfig({ identity: { requireAuth: true, order: [], apiKeys: [] } }))).toBe(
      'Invalid configuration: identity.apiKeys: must not be empty (when identity.requireAuth is true); ' +
        'identity.order: must not be empty (when identity.requireAuth is true)',
    )
    const keys = [{ key: 'sk-alice-0123456789', user: 'alice' }]
    expect(parseConfig({ identity: { requireAuth: true, apiKeys: keys } }).identity.requireAuth).toBe(true)
    // A key may name a user `users` does not list: that user gets defaultUser's settings under its own name.
    expect(parseConfig({ identity: { apiKeys: keys }, users: [{ name: 'bob' }] }).identity.apiKeys).toEqual(keys)
  })

  it('refuses one header for two purposes, and a key header as the user or deadline header', () => {
    expect(problemOf(() => parseConfig({ identity: { header: 'x-kvgate-deadline-ms' } }))).toBe(
      'Invalid configuration: admission.deadlineHeader: must differ from identity.header',
    )
    expect(problemOf(() => parseConfig({ identity: { header: 'authorization' } }))).toBe(
      'Invalid configuration: identity.header: must not be one of "authorization", "api-key", "x-api-key"',
    )
    expect(problemOf(() => parseConfig({ admission: { deadlineHeader: 'x-api-key' } }))).toContain(
      'admission.deadlineHeader: must not be one of',
    )
  })

  it('refuses duplicate backends (after defaulting names and trimming slashes), users and keys', () => {
    const message = problemOf(() =>
      parseConfig({ backends: [{ url: 'http://a:1/' }, { url: 'http://a:1', name: 'vllm-0' }] }),
    )
    expect(message).toBe(
      'Invalid configuration: backends.1.name: duplicate of backends.0.name ("vllm-0"); ' +
        'backends.1.url: duplicate of backends.0.url ("http://a:1")',
    )
    expect(
      problemOf(() =>
        parseConfig({
          identity: {
            apiKeys: [
              { key: 'sk-shared-0123456789', user: 'a' },
              { key: 'sk-shared-0123456789', user: 'b' },
            ],
          },
        }),
      ),
    ).toBe('Invalid configuration: identity.apiKeys.1.key: duplicate of identity.apiKeys.0.key')
  })

  it('reports every problem of a file at once, rules and plain fields together', () => {
    const message = problemOf(() =>
      parseConfig({ server: { port: -1 }, predictor: { windowSize: 5 }, users: [{ name: 'a' }, { name: 'a' }] }),
    )
    expect(message.split('; ')).toEqual([
      'Invalid configuration: server.port: must be >= 0',
      'predictor.windowSize: must be >= predictor.minSamples (20)',
      'users.1.name: duplicate of users.0.name ("a")',
    ])
  })
})

describe('policy options', () => {
  it('are checked by the chosen policy, which names the field', () => {
    const message = problemOf(() => parseConfig({ policy: { name: 'vtc', options: { nonsense: 1 } } }))
    expect(message).toContain('policy.options')
    expect(message).toContain('nonsense')
    expect(parseConfig({ policy: { name: 'vtc' } }).policy.name).toBe('vtc')
  })

  it('are validated with the config, by the named policy schema, and come back with its defaults', () => {
    expect(parseConfig({ policy: { name: 'vtc', options: { wOut: 3 } } }).policy).toEqual({
      name: 'vtc',
      options: { wIn: 1, wOut: 3, predictive: true },
    })
    expect(problemOf(() => parseConfig({ policy: { name: 'vtc', options: { wIn: 0, wOut: 0 } } }))).toBe(
      'Invalid configuration: policy.options.wOut: must be > 0 (when policy.options.wIn is 0)',
    )
    // Options valid for one policy are unknown to another.
    expect(problemOf(() => parseConfig({ policy: { name: 'fifo', options: { wIn: 1 } } }))).toBe(
      'Invalid configuration: policy.options.wIn: unknown field',
    )
    expect(
      problemOf(() =>
        parseConfig({ server: { port: 'x' }, policy: { name: 'dynamic-tpm', options: { probeRatio: -1 } } }),
      ),
    ).toBe('Invalid configuration: server.port: must be integer; policy.options.probeRatio: must be >= 0')
  })
})

describe('routing and model pools', () => {
  it('fill prefix-aware routing options with their defaults, and name a bad one', () => {
    expect(parseConfig({ routing: { name: 'prefix-aware' } }).routing).toEqual({
      name: 'prefix-aware',
      options: {
        affinityMaxLoadGap: 0.5,
        affinityWaitMs: 0,
        minHitBlocks: 2,
        hitWeight: 1,
        roomWeight: 1,
        queueWeight: 0.5,
        uncachedNeed: true,
        maxBlocksPerBackend: 262144,
        entryTtlMs: 600000,
        sessionAffinity: false,
        sessionHeader: 'x-session-id',
        maxSessions: 100000,
      },
    })
    expect(
      problemOf(() => parseConfig({ routing: { name: 'prefix-aware', options: { affinityMaxLoadGap: 2 } } })),
    ).toContain('routing.options.affinityMaxLoadGap: must be <= 1')
    expect(problemOf(() => parseConfig({ routing: { name: 'random' } }))).toContain('routing.name')
    expect(problemOf(() => parseConfig({ routing: { name: 'round-robin', options: { x: 1 } } }))).toContain(
      'routing.options.x: unknown field',
    )
  })

  it('are picked by KVGATE_ROUTING or --routing, which drop the options of the file’s router', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-routing-'))
    const file = join(dir, 'kvgate.yaml')
    writeFileSync(file, 'routing: { name: prefix-aware, options: { affinityWaitMs: 5 } }\n')
    expect(loadConfig(file, {}, {}).routing.options).toMatchObject({ affinityWaitMs: 5 })
    expect(loadConfig(file, {}, { KVGATE_ROUTING: 'round-robin' }).routing).toEqual({
      name: 'round-robin',
      options: {},
    })
    expect(loadConfig(file, { routing: { name: 'most-room' } }, {}).routing).toEqual({ name: 'most-room', options: {} })
    expect(problemOf(() => loadConfig(file, {}, { KVGATE_ROUTING: 'random' }))).toContain(
      'KVGATE_ROUTING: routing.name',
    )
  })

  it('take configured models as names or with a context length, and a drain flag', () => {
    const config = parseConfig({
      backends: [{ url: 'http://a:1', models: ['llama', { name: 'qwen', maxModelLen: 8192 }], drain: true }],
    })
    expect(config.backends[0]).toMatchObject({ models: ['llama', { name: 'qwen', maxModelLen: 8192 }], drain: true })
    expect(problemOf(() => parseConfig({ backends: [{ url: 'http://a:1', models: [] }] }))).toContain(
      'backends.0.models',
    )
    expect(problemOf(() => parseConfig({ models: { estimateMarginRatio: 1 } }))).toContain(
      'models.estimateMarginRatio: must be < 1',
    )
  })
})

describe('the documented example config', () => {
  it('loads and equals the built-in defaults', () => {
    const path = new URL('../../config/kvgate.yaml', import.meta.url).pathname
    expect(loadConfig(path, {}, {})).toEqual(parseConfig({}))
  })
})

describe('the state section', () => {
  it('defaults to memory, and needs a url with redis', () => {
    expect(parseConfig({}).state).toMatchObject({ store: 'memory', url: null, leaseMs: 5_000, expectedReplicas: 1 })
    expect(problemOf(() => parseConfig({ state: { store: 'redis' } }))).toBe(
      'Invalid configuration: state.url: must be string (when state.store is "redis")',
    )
    expect(parseConfig({ state: { store: 'redis', url: 'redis://r:6379' } }).state.url).toBe('redis://r:6379')
  })

  it('refuses a lease that a live replica could not renew in time, and unknown stores', () => {
    expect(problemOf(() => parseConfig({ state: { leaseMs: 1_000, heartbeatMs: 1_000 } }))).toContain(
      'state.leaseMs: must be > state.heartbeatMs',
    )
    expect(problemOf(() => parseConfig({ state: { store: 'etcd' } }))).toContain('state.store')
  })

  it('never prints the url, which may carry a password', () => {
    const message = problemOf(() =>
      parseConfig({ state: { store: 'redis', url: 'redis://:hunter2secret@r:6379', leaseMs: 'soon' } }),
    )
    expect(message).toContain('state.leaseMs')
    expect(message).not.toContain('hunter2secret')
  })
})
