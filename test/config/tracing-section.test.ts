import { describe, expect, it } from 'vitest'
import { configSchema, parseConfig } from '../../src/config/index.js'
import { secretValues } from '../../src/core/index.js'
import { KvgateError } from '../../src/errors/index.js'

function problemOf(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(KvgateError)
    return (err as KvgateError).message
  }
  throw new Error('expected an invalid_config error')
}

describe('the tracing section', () => {
  it('is off by default, pointed at a local collector', () => {
    expect(parseConfig({}).tracing).toEqual({
      enabled: false,
      endpoint: 'http://127.0.0.1:4318/v1/traces',
      serviceName: 'kvgate',
      sampleRatio: 1,
      headers: {},
      exportTimeoutMs: 10_000,
    })
  })

  it('refuses a ratio outside 0..1, an endpoint that is not http(s) and unknown fields', () => {
    const message = problemOf(() =>
      parseConfig({ tracing: { sampleRatio: 1.5, endpoint: 'grpc://collector:4317', protocol: 'grpc' } }),
    )
    expect(message).toContain('tracing.sampleRatio')
    expect(message).toContain('tracing.endpoint')
    expect(message).toContain('protocol')
  })

  it('treats export headers as secrets, so they can be masked wherever text mentions them', () => {
    const config = parseConfig({ tracing: { headers: { authorization: 'Bearer otlp-secret-42' } } })
    expect(secretValues(configSchema, config)).toContain('Bearer otlp-secret-42')
    const message = problemOf(() => parseConfig({ tracing: { headers: { 'x-key': 42 } } }))
    expect(message).toContain('tracing.headers')
  })
})
