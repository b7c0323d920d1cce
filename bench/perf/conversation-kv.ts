/**
 * How long `bench analyze`'s conversation-KV section takes on a 100k-request trace: the synthetic day of chat
 * (bench/chat-day-trace.ts, 21,000 users over 12 hours, about 100,000 requests), OPT-13B's 800 KiB per token
 * and the issue's three host-memory sizes, each eviction policy timed on its own. The figures are in
 * docs/bench.md.
 *
 *   npm run bench:perf:build && node node_modules/.cache/kvgate-perf/bench/perf/conversation-kv.js
 */
import { analyzeConversationKv } from '../../src/bench/conversation-kv.js'
import { parseTrace } from '../../src/bench/index.js'
import { buildKvAccessTrace, lookaheadEnds, reuseDistances } from '../../src/bench/kv-access-trace.js'
import { kvCost } from '../../src/bench/kv-models.js'
import { kvTierPolicies, simulateKvTier } from '../../src/bench/kv-tier-policies.js'
import { generateChatDayTrace } from '../chat-day-trace.js'
import { loadNote, printTable } from './lib/table.js'

const SIZES_GIB = [50, 100, 200]
const ms = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6

const text = generateChatDayTrace({ users: 21_000, hours: 12, seed: 2 })
let start = process.hrtime.bigint()
const parsed = parseTrace(text)
const parseMs = ms(start)
const workload = { kind: 'trace' as const, format: parsed.format, requests: parsed.requests, skipped: [] }
start = process.hrtime.bigint()
const trace = buildKvAccessTrace(workload)
const buildMs = ms(start)
start = process.hrtime.bigint()
reuseDistances(trace)
const distanceMs = ms(start)

const kv = kvCost({})
const lookaheadEnd = lookaheadEnds(trace, { seconds: 30 })
const rows: (string | number)[][] = [
  ['parse the trace', '', parseMs],
  ['access trace', '', buildMs],
  ['reuse distances (Fenwick tree)', '', distanceMs],
]
for (const policy of kvTierPolicies) {
  for (const size of SIZES_GIB) {
    start = process.hrtime.bigint()
    simulateKvTier(trace, policy, { capacityTokens: Math.floor((size * 2 ** 30) / kv.bytesPerToken), lookaheadEnd })
    rows.push([`simulate ${policy.name}`, `${size} GiB`, ms(start)])
  }
}
start = process.hrtime.bigint()
analyzeConversationKv(trace, { kv, hostMemoryGiB: SIZES_GIB, queueWindowSec: 30, closedLoop: { numClients: 1 } })
rows.push(['analyzeConversationKv: distances, the 12 simulations and every figure', '3 sizes', ms(start)])

printTable(
  `Conversation-KV analysis of ${trace.steps.toLocaleString('en-US')} requests, ${trace.conversations.length.toLocaleString('en-US')} conversations (${loadNote()})`,
  ['step', 'host memory', 'ms'],
  rows,
)
