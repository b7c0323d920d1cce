import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { jainIndex } from '../../src/bench/index.js'
import { vtcServiceBound } from '../../src/policies/index.js'
import { E2E, FairnessClients, startE2eStack, type E2eStack } from './e2e-stack.js'
import { compareFifoAndVtc, percentile, printTable } from './harness.js'

// The fairness claims again, end to end: real gateway (admission, ledger, predictor, policies, proxy) in
// front of the real emulator over loopback, clients streaming with x-user-id. Emulated time runs at
// `speed`; closed-loop clients stand in for request rates (a user keeping 10× more requests outstanding
// sends 10× more as long as it is served).

const SPEED = 10

// Bound for this stack (see docs/policies.md): prompt 100, output 100 (ignore_eos = the prediction),
// KV 64 × 16 = 1,024 tokens, weights 1. The client measures the prompt at the first token, not at
// admission, so the service it sees lags by up to a KV's worth of prompts: the bound is taken without
// the exact-prediction discount (4·w_out·M rather than 2·w_out·M).
const KV_TOKENS = E2E.numGpuBlocks * E2E.blockSize
const BOUND = vtcServiceBound({
  wIn: 1,
  wOut: 2,
  maxPromptTokens: E2E.promptTokens,
  maxPredictedOutputTokens: E2E.outputTokens,
  kvCapacityTokens: KV_TOKENS,
  minWeight: 1,
  exactPredictions: false,
})

let stack: E2eStack | undefined
afterEach(async () => {
  await stack?.close()
  stack = undefined
})

const whenAll = async (clients: FairnessClients, users: string[], minTokens: number, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (users.some((u) => (clients.service.get(u) ?? 0) < minTokens)) {
    if (Date.now() > deadline) throw new Error(`users never all reached ${minTokens} weighted tokens`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const whenAny = async (clients: FairnessClients, users: string[], timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (users.every((u) => (clients.service.get(u) ?? 0) === 0)) {
    if (Date.now() > deadline) throw new Error('nobody was served')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * Run backlogged users with the given numbers of requests outstanding for `runMs` real ms after all are
 * served; service is counted from then. Returns the largest max−min spread over samples and Jain's index.
 */
async function backlogged(
  policy: string,
  outstanding: Readonly<Record<string, number>>,
  runMs: number,
  /** Stop early once the spread exceeds this (a busy machine slows the emulator; growth, not speed, is tested). */
  stopAboveDifference = Number.POSITIVE_INFINITY,
) {
  const names = Object.keys(outstanding)
  stack = await startE2eStack({ speed: SPEED, policy, users: names.map((name) => ({ name })) })
  const clients = new FairnessClients(stack, Object.fromEntries(names.map((n) => [n, 1])))
  for (const name of names) clients.closedLoop(name, outstanding[name] ?? 1)
  // Measure from once the KV is full (someone has been served for a moment), not from when everyone has:
  // under fifo the users with few requests outstanding may wait a long time for their first token.
  await whenAny(clients, names, 15_000)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const base = new Map(clients.service)
  const gained = (s: ReadonlyMap<string, number>, u: string) => (s.get(u) ?? 0) - (base.get(u) ?? 0)
  const spreadNow = (): number => {
    const values = names.map((u) => gained(clients.service, u))
    return Math.max(...values) - Math.min(...values)
  }
  clients.sample(100)
  const endAt = Date.now() + runMs
  while (Date.now() < endAt && spreadNow() <= stopAboveDifference) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await clients.stop()
  const difference = Math.max(
    ...clients.samples.map((s) => {
      const values = names.map((u) => gained(s.service, u))
      return Math.max(...values) - Math.min(...values)
    }),
  )
  const final = names.map((u) => gained(clients.service, u))
  await stack.close()
  stack = undefined
  return { difference, jain: jainIndex(final), final }
}

/** Two backlogged users, 6 and 60 requests outstanding (1:10). */
async function twoUsers(policy: string, runMs: number, stopAboveDifference?: number) {
  const { difference, jain, final } = await backlogged(policy, { light: 6, heavy: 60 }, runMs, stopAboveDifference)
  return { difference, jain, light: final[0] ?? 0, heavy: final[1] ?? 0 }
}

describe('fairness end to end: gateway + emulator', () => {
  it('two backlogged users 1:10: vtc within the bound, fifo past it (service difference and Jain printed)', async () => {
    // fifo runs until its difference has clearly passed the bound (about 5 s here; up to 15 s on a busy machine).
    const fifo = await twoUsers('fifo', 15_000, 1.2 * BOUND)
    const vtc = await twoUsers('vtc', 5_000)
    printTable(
      `gateway + emulator (speed ${SPEED}): 2 backlogged users, 6 vs 60 outstanding; vtc bound ${Math.round(BOUND)}`,
      ['policy', 'light service', 'heavy service', 'max service difference', "Jain's index"],
      [
        ['fifo', fifo.light, fifo.heavy, fifo.difference, fifo.jain],
        ['vtc', vtc.light, vtc.heavy, vtc.difference, vtc.jain],
      ],
    )
    expect(vtc.difference).toBeLessThanOrEqual(BOUND)
    expect(vtc.jain).toBeGreaterThan(0.95)
    expect(fifo.difference).toBeGreaterThan(BOUND)
    expect(fifo.jain).toBeLessThan(0.8)
  })

  it('ten backlogged users, 2 to 20 requests outstanding: vtc keeps every pair within the bound', async () => {
    const outstanding = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`u${i + 1}`, 2 * (i + 1)]))
    const fifo = await backlogged('fifo', outstanding, 3_000)
    const vtc = await backlogged('vtc', outstanding, 3_000)
    printTable(
      `gateway + emulator (speed ${SPEED}): 10 backlogged users, 2..20 outstanding, 3 s; vtc bound ${Math.round(BOUND)}`,
      ['policy', 'least served', 'most served', 'max service difference (max−min)', "Jain's index"],
      [
        ['fifo', Math.min(...fifo.final), Math.max(...fifo.final), fifo.difference, fifo.jain],
        ['vtc', Math.min(...vtc.final), Math.max(...vtc.final), vtc.difference, vtc.jain],
      ],
    )
    expect(vtc.difference).toBeLessThanOrEqual(BOUND)
    // 3 s is ~2–3 requests per user under vtc: Jain's index moves by a request's worth.
    expect(vtc.jain).toBeGreaterThan(0.9)
    expect(fifo.jain).toBeLessThan(0.7)
    expect(fifo.difference).toBeGreaterThan(2 * vtc.difference)
    await compareFifoAndVtc('end-to-end file')
  })

  it('vtc weights 2:1 give a 2:1 service ratio within 10%', async () => {
    stack = await startE2eStack({
      speed: SPEED,
      policy: 'vtc',
      users: [
        { name: 'gold', weight: 2 },
        { name: 'silver', weight: 1 },
      ],
    })
    const clients = new FairnessClients(stack, { gold: 2, silver: 1 })
    clients.closedLoop('gold', 30)
    clients.closedLoop('silver', 30)
    await whenAll(clients, ['gold', 'silver'], 1, 15_000)
    const base = new Map(clients.service)
    // Until silver has ~30 requests' worth (a request's worth is then ~3% of the ratio), at most 20 s.
    const enough = (base.get('silver') ?? 0) + 30 * (E2E.promptTokens + 2 * E2E.outputTokens)
    await whenAll(clients, ['silver'], enough, 20_000)
    await clients.stop()
    // Weighted service is tokens / weight: raw tokens are service × weight.
    const gold = ((clients.service.get('gold') ?? 0) - (base.get('gold') ?? 0)) * 2
    const silver = (clients.service.get('silver') ?? 0) - (base.get('silver') ?? 0)
    printTable(
      `gateway + emulator: weights 2:1 under vtc`,
      ['user', 'weighted tokens served', 'ratio'],
      [
        ['gold (w=2)', gold, gold / silver],
        ['silver (w=1)', silver, 1],
      ],
    )
    expect(gold / silver).toBeGreaterThan(1.8)
    expect(gold / silver).toBeLessThan(2.2)
    // The in-process reference comparison of fifo and vtc on the two-user workload, for the log.
    await compareFifoAndVtc('end-to-end file')
  })

  it('a light user next to a backlogged heavy one: vtc TTFT p90 at least 3× lower than fifo', async () => {
    const p90 = new Map<string, number>()
    const runMs = new Map<string, number>()
    const rows: (string | number)[][] = []
    for (const policy of ['fifo', 'vtc']) {
      stack = await startE2eStack({ speed: SPEED, policy, users: [{ name: 'light' }, { name: 'heavy' }] })
      const clients = new FairnessClients(stack, { light: 1, heavy: 1 })
      clients.closedLoop('heavy', 40)
      await whenAll(clients, ['heavy'], 1, 15_000)
      // One request every 0.5 real s = every 5 emulated s, each running ~4 s: about a fifth of what the KV
      // serves, so light never has a backlog of its own.
      clients.periodic('light', 500)
      await new Promise((resolve) => setTimeout(resolve, 6_000))
      await clients.stop()
      // TTFT in emulated ms: the stack's clock is real time here, so scale by the emulator's speed. A request
      // still waiting when the run stopped counts with the time it had waited so far: a lower bound, which
      // can only understate the policy it happens to (fifo), never overstate it.
      const light = clients.records.filter((r) => r.user === 'light')
      const stoppedAtMs = clients.stoppedAtMs ?? 0
      const ttfts = light.map((r) => ((r.firstTokenMs ?? stoppedAtMs) - r.sentMs) * SPEED)
      const served = light.filter((r) => r.firstTokenMs !== undefined).length
      expect(light.every((r) => r.status === 0 || r.status === 200)).toBe(true)
      expect(light.length).toBeGreaterThan(8)
      // How long a request runs on this machine right now (first to last token), from heavy's full requests.
      const runs = clients.records
        .filter((r) => r.user === 'heavy' && r.tokens === E2E.outputTokens)
        .map((r) => ((r.lastTokenMs ?? 0) - (r.firstTokenMs ?? 0)) * SPEED)
      runMs.set(policy, percentile(runs, 50))
      p90.set(policy, percentile(ttfts, 90))
      rows.push([policy, light.length, served, percentile(ttfts, 50), percentile(ttfts, 90), percentile(runs, 50)])
      await stack.close()
      stack = undefined
    }
    printTable(
      `gateway + emulator: light user TTFT (emulated ms) next to a heavy user with 40 outstanding`,
      ['policy', 'sent', 'first token came', 'p50', 'p90', 'a request runs (p50)'],
      rows,
    )
    expect((p90.get('vtc') ?? Infinity) * 3).toBeLessThanOrEqual(p90.get('fifo') ?? 0)
    // "About the time until the next running request completes": never more than one request's run time away
    // (measured in the same run, ~4 emulated s); allow half again for the gateway's poll to see the freed KV.
    expect(p90.get('vtc')).toBeLessThanOrEqual(1.5 * (runMs.get('vtc') ?? 0))
    // The in-process reference comparison of fifo and vtc on the two-user workload, for the log.
    await compareFifoAndVtc('end-to-end file')
  })

  it('tpm holds a backlogged user within 5% of its quota over a compressed minute', async () => {
    const speed = 20
    // 15 requests of 100 + 100 per minute; the KV (4 at a time, ~4 emulated s each) serves that in ~15 s even
    // when a busy machine slows the emulator, so the quota and not the KV is what holds the user.
    const quota = 3_000
    stack = await startE2eStack({
      speed,
      policy: 'tpm',
      users: [{ name: 'alice', tokensPerMinute: quota }],
      scaledGatewayClock: true,
    })
    const clients = new FairnessClients(stack, { alice: 1 })
    const startMs = stack.clock.now()
    clients.closedLoop('alice', 6)
    // Two emulated minutes: 6 s of real time at speed 20.
    const deadline = Date.now() + 30_000
    while (stack.clock.now() < startMs + 125_000) {
      if (Date.now() > deadline) throw new Error('two emulated minutes never passed')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await clients.stop()
    const rows: (string | number)[][] = []
    for (let minute = 0; minute < 2; minute++) {
      const from = startMs + minute * 60_000
      const admitted = clients.records.filter(
        (r) => r.firstTokenMs !== undefined && r.firstTokenMs >= from && r.firstTokenMs < from + 60_000,
      )
      const tokens = admitted.length * (E2E.promptTokens + E2E.outputTokens)
      rows.push([minute + 1, quota, tokens, tokens / quota])
      // The first token comes a little after admission: allow one request of slack at the minute's edge.
      expect(tokens, `minute ${minute + 1}`).toBeLessThanOrEqual(quota + (E2E.promptTokens + E2E.outputTokens))
      expect(tokens, `minute ${minute + 1}`).toBeGreaterThanOrEqual(0.95 * quota)
    }
    printTable(
      `gateway + emulator (speed ${speed}, scaled gateway clock): tpm tokens admitted per minute`,
      ['minute', 'quota', 'tokens', 'ratio'],
      rows,
    )
    // The in-process reference comparison of fifo and vtc on the two-user workload, for the log.
    await compareFifoAndVtc('end-to-end file')
  })

  it("dynamic-tpm exports quotas that hand an idle user's share to the other and give it back", async () => {
    const speed = 20
    stack = await startE2eStack({
      speed,
      policy: 'dynamic-tpm',
      // Emulated ms: recompute every second, a user idle for 10 s drops out of the division.
      policyOptions: { intervalMs: 1_000, activeWindowMs: 10_000, halfLifeMs: 5_000 },
      users: [{ name: 'a' }, { name: 'b' }],
      scaledGatewayClock: true,
    })
    const current = stack
    const quotaOf = async (user: string): Promise<number | undefined> => {
      const text = await (await request(`${current.adminUrl}/metrics`)).body.text()
      const line = text.split('\n').find((l) => l.startsWith(`kvgate_policy_quota_tokens_per_minute{user="${user}"}`))
      return line === undefined ? undefined : Number(line.split(' ').at(-1))
    }
    const waitEmulated = async (ms: number) => {
      const until = current.clock.now() + ms
      const deadline = Date.now() + 20_000
      while (current.clock.now() < until) {
        if (Date.now() > deadline) throw new Error('emulated time did not pass')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    const a = new FairnessClients(current, { a: 1 })
    let b = new FairnessClients(current, { b: 1 })
    a.closedLoop('a', 20)
    b.closedLoop('b', 20)
    // 40 emulated seconds: the served-rate average (half-life 5 s over the gateway's 10 s counter window)
    // has settled on what the KV serves.
    await waitEmulated(40_000)
    const shared = [await quotaOf('a'), await quotaOf('b')]
    await b.stop()
    await waitEmulated(20_000) // b idle for longer than activeWindowMs
    const alone = await quotaOf('a')
    b = new FairnessClients(current, { b: 1 })
    b.closedLoop('b', 20)
    await waitEmulated(10_000)
    const back = [await quotaOf('a'), await quotaOf('b')]
    await a.stop()
    await b.stop()
    printTable(
      `gateway + emulator (speed ${speed}): dynamic-tpm quotas (tokens/min) from /metrics`,
      ['phase', 'a', 'b'],
      [
        ['both active', shared[0] ?? NaN, shared[1] ?? NaN],
        ['b idle', alone ?? NaN, '-'],
        ['b back', back[0] ?? NaN, back[1] ?? NaN],
      ],
    )
    const [sharedA, sharedB] = shared as [number, number]
    expect(sharedA).toBeGreaterThan(0)
    expect(sharedA / sharedB).toBeCloseTo(1, 1)
    // b's share goes to a while b is idle (the served capacity stays about the same: a alone fills the KV)...
    expect(alone).toBeGreaterThan(1.6 * sharedA)
    // ...and comes back when b returns.
    expect(back[0]).toBeLessThan(0.7 * (alone ?? 0))
    expect((back[0] ?? 0) / (back[1] ?? 1)).toBeCloseTo(1, 1)
    await compareFifoAndVtc('end-to-end file')
  })
})
