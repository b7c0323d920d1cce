import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { failureLine } from '../../src/bench/cli-options.js'
import type { Stack } from '../gateway/stack.js'
import { startStack, until } from '../gateway/stack.js'
import { fixture, runBench } from './cli-harness.js'

/** A run whose requests mostly failed says why and exits non-zero instead of printing a table of NaN. */
let stack: Stack
beforeAll(async () => {
  stack = await startStack({
    config: { identity: { requireAuth: true, apiKeys: [{ key: 'sk-bench-1234', user: 'bench' }] } },
  })
})
afterAll(async () => {
  await stack.close()
})

describe('kvgate bench on a server it cannot use', () => {
  it('exits non-zero at once, saying the connection was refused', async () => {
    const { stderr, stdout, exitCode } = await runBench(['-i', fixture('conversation.txt'), '-u', 'http://127.0.0.1:1'])
    expect(exitCode).toBe(1)
    expect(stderr).toMatch(/^kvgate bench: cannot reach http:\/\/127\.0\.0\.1:1: connection refused \(.*ECONNREFUSED/m)
    expect(stdout).not.toContain('Statistics summary')
  })

  it('exits non-zero with the 401 of a gateway that requires a key, and runs with --api-key', async () => {
    const refused = await runBench(['-i', fixture('conversation.txt'), '-u', stack.url, '--speed', '20'])
    expect(refused.exitCode).toBe(1)
    expect(refused.stderr).toMatch(/(401|7 of 7 requests failed; first error: HTTP 401)/)
    expect(refused.stderr).toMatch(/API key/i)
    const ok = await runBench([
      '-i',
      fixture('conversation.txt'),
      '-u',
      stack.url,
      '--speed',
      '20',
      '--api-key',
      'sk-bench-1234',
    ])
    expect(ok.exitCode).toBeUndefined()
    expect(ok.stdout).toMatch(/requests = 7 {2}completed = 7/)
    // Every request that reached admission was released: the ledger is back at 0.
    const totals = await until(async () => {
      const res = await request(`${stack.adminUrl}/debug/reservations`)
      const t = ((await res.body.json()) as { totals: Record<string, number> }).totals
      return t['requestsStarted'] === t['requestsEnded'] ? t : undefined
    })
    expect(totals).toMatchObject({ reservedTokens: 0, reservations: 0, queued: 0 })
  })

  it('counts only failures (not 429s) and needs more than half of the requests to fail', () => {
    const records = [
      { outcome: 'failed', status: 0, error: 'request failed: connection reset (socket hang up)' },
      { outcome: 'failed', status: 500, error: 'boom' },
    ] as never[]
    expect(failureLine({ requests: 4, failed: 2 }, records)).toBeUndefined()
    expect(failureLine({ requests: 3, failed: 2 }, records)).toBe(
      '2 of 3 requests failed; first error: request failed: connection reset (socket hang up)',
    )
    expect(failureLine({ requests: 2, failed: 2 }, [records[1]] as never[])).toBe(
      '2 of 2 requests failed; first error: HTTP 500: boom',
    )
  })
})
