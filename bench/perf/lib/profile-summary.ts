/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) as the functions with the most self time, with
 * their file and line, so a hot spot can be named without opening DevTools.
 *
 *   npx tsx bench/perf/lib/profile-summary.ts PROFILE.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs'
import { flag, printTable } from './table.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const path = process.argv[2]
if (path === undefined) throw new Error('usage: profile-summary.ts PROFILE.cpuprofile [--top 25]')
const top = flag('top', 25)
const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map<string, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const node = byId.get(id)
  const delta = profile.timeDeltas[i] ?? 0
  if (node === undefined) return
  const { functionName, url, lineNumber } = node.callFrame
  const file = url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/')
  const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`
  self.set(key, (self.get(key) ?? 0) + delta)
  total += delta
})
const rows = [...self.entries()]
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)
  .map(([key, us]) => [key, (us / 1000).toFixed(1), `${((us / total) * 100).toFixed(1)}%`])
printTable(`Self time, ${(total / 1e6).toFixed(2)} s sampled`, ['function', 'ms', 'share'], rows)
