import { describe, expect, it } from 'vitest'
import { formatDuration, rejectionHeaders } from '../../src/admission/index.js'

describe('admission: 429 headers and durations as OpenAI writes them', () => {
  it('formats durations like x-ratelimit-reset-*: 20ms, 1s, 9.8s, 6m0s, 1h2m3s', () => {
    expect(formatDuration(20)).toBe('20ms')
    expect(formatDuration(999.2)).toBe('1s')
    expect(formatDuration(1_000)).toBe('1s')
    expect(formatDuration(9_800)).toBe('9.8s')
    expect(formatDuration(59_960)).toBe('1m0s')
    expect(formatDuration(360_000)).toBe('6m0s')
    expect(formatDuration(90_500)).toBe('1m30.5s')
    expect(formatDuration(3_723_000)).toBe('1h2m3s')
    expect(formatDuration(0)).toBe('0s')
    expect(formatDuration(Number.NaN)).toBe('0s')
  })

  it('clamps retry-after to 1..60 s, both headers agreeing, and says x-should-retry: false past 60 s', () => {
    expect(rejectionHeaders('queue_full', 250, {})).toEqual({
      'retry-after': '1',
      'retry-after-ms': '1000',
      'x-kvgate-reject-reason': 'queue_full',
    })
    expect(rejectionHeaders('queue_deadline_exceeded', 9_801, {})).toEqual({
      'retry-after': '10',
      'retry-after-ms': '9801',
      'x-kvgate-reject-reason': 'queue_deadline_exceeded',
    })
    expect(rejectionHeaders('queue_deadline_exceeded', 60_000, {})['x-should-retry']).toBeUndefined()
    expect(rejectionHeaders('queue_deadline_exceeded', 60_001, {})).toEqual({
      'retry-after': '60',
      'retry-after-ms': '60000',
      'x-should-retry': 'false',
      'x-kvgate-reject-reason': 'queue_deadline_exceeded',
    })
  })

  it('adds the policy rate limits as x-ratelimit-*, remaining floored at 0', () => {
    expect(
      rejectionHeaders('quota_exceeded', 1_500, {
        limitTokens: 100_000,
        remainingTokens: -12.5,
        resetTokensMs: 6_000,
        limitRequests: 600,
        remainingRequests: 599.7,
        resetRequestsMs: 100,
      }),
    ).toEqual({
      'retry-after': '2',
      'retry-after-ms': '1500',
      'x-kvgate-reject-reason': 'quota_exceeded',
      'x-ratelimit-limit-tokens': '100000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '6s',
      'x-ratelimit-limit-requests': '600',
      'x-ratelimit-remaining-requests': '599',
      'x-ratelimit-reset-requests': '100ms',
    })
  })
})
