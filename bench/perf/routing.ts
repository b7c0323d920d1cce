/**
 * Routing: what prefix-aware routing costs per decision and in memory. Two figures, printed as Markdown:
 * - heap per index entry: one backend's index filled with N block hashes (its LRU bound), heap after a GC
 *   minus before, over N;
 * - one decision: hashing a prompt once (its first decision; later ones reuse the hashes) and choosing among
 *   4 candidates whose indexes hold 65,536 blocks each, by prompt length.
 *
 *   npm run bench:perf:build && node --expose-gc node_modules/.cache/kvgate-perf/bench/perf/routing.js [--entries 262144]
 */
import {
  createPrefixAwareRouter,
  createRoutingHints,
  PrefixIndex,
  type RouteCandidate,
} from '../../src/routing/index.js'
import { flag, loadNote, printTable } from './lib/table.js'

const entries = flag('entries', 262_144)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')

const ids = (n: number, offset: number): number[] => Array.from({ length: n }, (_, i) => 3_000_000 + offset + i)

// Heap per entry.
gc()
const before = process.memoryUsage().heapUsed
const index = new PrefixIndex({ maxBlocksPerBackend: entries, ttlMs: 600_000 })
const hashes = Array.from({ length: entries }, (_, i) => i * 2_654_435_761 + 0x1_0000_0000)
for (let i = 0; i < entries; i += 1024) index.touch('a', hashes.slice(i, i + 1024), entries, i)
gc()
const perEntry = (process.memoryUsage().heapUsed - before - hashes.length * 8) / entries
const rows: (string | number)[][] = [
  ['index entry (heap bytes)', perEntry, `${entries.toLocaleString('en-US')} entries`],
]

// One decision.
const router = createPrefixAwareRouter({ options: {} })
const candidates: RouteCandidate[] = ['a', 'b', 'c', 'd'].map((backendId) => ({
  backendId,
  capacityTokens: 65_536 * 16,
  roomTokens: 500_000,
  waiting: 2,
  running: 30,
  blockSize: 16,
}))
let seq = 0
for (const c of candidates) {
  // 64 conversations' histories per backend fill its index.
  for (let k = 0; k < 64; k++) {
    const prompt = ids(16_384, (seq++ % 100_000) * 100_000)
    const req = {
      id: `warm-${seq}`,
      model: 'm',
      promptTokens: prompt.length,
      needTokens: prompt.length + 256,
      hints: createRoutingHints({ model: 'm', tokenIds: () => prompt, arrivedAtMs: 0 }),
      waitedMs: 0,
    }
    router.onAdmitted(req, { backendId: c.backendId, reason: 'score', sharedTokens: 0, expectedHitTokens: 0 }, 0)
    router.onFinished(req.id, 0)
  }
}
for (const tokens of [1_000, 1_000, 8_000, 30_000]) {
  // The first 1,000-token round warms the JIT up and is not printed.
  const warm = rows.length === 1
  const reps = 500
  let hashUs = 0
  let chooseUs = 0
  for (let r = 0; r < reps; r++) {
    const prompt = ids(tokens, (seq++ % 100_000) * 100_000)
    const hints = createRoutingHints({ model: 'm', tokenIds: () => prompt, arrivedAtMs: 0 })
    const req = { id: `r${seq}`, model: 'm', promptTokens: tokens, needTokens: tokens + 256, hints, waitedMs: 0 }
    let t = process.hrtime.bigint()
    hints.blockHashes(16)
    hashUs += Number(process.hrtime.bigint() - t) / 1000
    t = process.hrtime.bigint()
    router.choose(req, candidates, 1)
    chooseUs += Number(process.hrtime.bigint() - t) / 1000
  }
  if (warm) {
    rows.push(['(warm-up)', 0, ''])
    continue
  }
  rows.push([`decision, ${tokens.toLocaleString('en-US')}-token prompt: hash once (µs)`, hashUs / reps, ''])
  rows.push([`decision, ${tokens.toLocaleString('en-US')}-token prompt: choose among 4 (µs)`, chooseUs / reps, ''])
}
printTable(
  `prefix-aware routing (${loadNote()})`,
  ['figure', 'value', 'note'],
  rows.filter((r) => r[0] !== '(warm-up)'),
)
