import { describe, expect, it } from 'vitest'
import { jainIndex } from '../../src/bench/index.js'
import type { PolicyUser } from '../../src/policies/index.js'
import { compareFifoAndVtc, printTable, runFairness } from './harness.js'

// VTC picks the user with the smallest counter, but that user's head may not fit while another user's
// would. kvgate's answer lives in the admission dispatcher (src/admission): the head is *bypassed* by
// heads that fit for at most `admission.maxBypassMs`, then the dispatcher holds everything behind it
// until it fits. 0 is the VTC artifact's strict head-of-line; a very large value never holds. This test
// shows why the default sits in between: strict leaves KV idle while small requests wait, unbounded
// starves the large requests, bounded bypass does neither.

describe('fairness: a user of large requests next to a user of small ones, under vtc', () => {
  it('bounded bypass keeps the KV busy without starving the large requests', async () => {
    const big: PolicyUser = { name: 'big', weight: 1 }
    const small: PolicyUser = { name: 'small', weight: 1 }
    const rows: (string | number)[][] = []
    const results = new Map<number, { utilization: number; bigShare: number; jain: number }>()
    for (const maxBypassMs of [0, 2_000, 600_000]) {
      const run = await runFairness({
        policy: 'vtc',
        users: [
          // 1,600 tokens: needs more than half of the 3,000-token KV, so it waits for room to gather.
          { user: big, ratePerSecond: Number.POSITIVE_INFINITY, promptTokens: 1_200, outputTokens: 400 },
          { user: small, ratePerSecond: Number.POSITIVE_INFINITY, promptTokens: 100, outputTokens: 50 },
        ],
        capacityTokens: 3_000,
        durationMs: 60_000,
        maxBypassMs,
      })
      const bigService = run.service.get('big') ?? 0
      const smallService = run.service.get('small') ?? 0
      const bigShare = bigService / (bigService + smallService)
      const jain = jainIndex([bigService, smallService])
      results.set(maxBypassMs, { utilization: run.kvUtilization, bigShare, jain })
      rows.push([maxBypassMs === 600_000 ? 'unbounded' : `${maxBypassMs} ms`, run.kvUtilization, bigShare, jain])
    }
    printTable(
      'vtc, large (1,200+400) vs small (100+50) requests, both backlogged, 60 s',
      ['maxBypassMs', 'KV utilization', "big's service share", "Jain's index"],
      rows,
    )
    const strict = results.get(0)
    const bounded = results.get(2_000)
    const unbounded = results.get(600_000)
    // Bounded bypass: the KV is used better than under strict head-of-line...
    expect(bounded?.utilization).toBeGreaterThan((strict?.utilization ?? 1) + 0.02)
    // ...and the large requests still get a fair part of the service, unlike unbounded bypass.
    expect(bounded?.bigShare).toBeGreaterThan(0.3)
    expect(unbounded?.bigShare).toBeLessThan(bounded?.bigShare ?? 0)
    await compareFifoAndVtc('large-request test')
  })
})
