/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) as the functions with the most self time, with
 * their file and line, so a hot spot can be named without opening DevTools.
 *
 *   npx tsx bench/perf/lib/profile-summary.ts PROFILE.cpuprofile [--top 25] [--callers FUNCTION]
 *
 * `--callers` prints the call chains (5 frames up) that lead to FUNCTION, by its self time under each.
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
const callersOf = flag('callers', '')
const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parentOf = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
const frameName = (node: ProfileNode): string => {
  const file = node.callFrame.url.split('/').slice(-2).join('/')
  return `${node.callFrame.functionName || '(anonymous)'}${file ? ` (${file}:${node.callFrame.lineNumber + 1})` : ''}`
}
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
// Self time by where the code lives: kvgate's own modules by folder, dependencies by package, Node itself.
const byPlace = new Map<string, number>()
profile.samples.forEach((id, i) => {
  const node = byId.get(id)
  if (node === undefined) return
  const { functionName, url } = node.callFrame
  const place =
    /\/src\/([a-z-]+)\//.exec(url)?.[1] !== undefined &&
    !url.includes('node_modules/.pnpm') &&
    url.includes('/src/') &&
    !/node_modules\/(?!\.cache)/.test(url)
      ? `kvgate src/${/\/src\/([a-z-]+)\//.exec(url)?.[1]}`
      : (/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ??
        (url.startsWith('node:')
          ? 'node (JS)'
          : functionName.startsWith('(')
            ? functionName
            : `native: ${functionName}`))
  byPlace.set(place, (byPlace.get(place) ?? 0) + (profile.timeDeltas[i] ?? 0))
})
printTable(
  'Self time by place',
  ['place', 'ms', 'share'],
  [...byPlace.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([place, us]) => [place, (us / 1000).toFixed(1), `${((us / total) * 100).toFixed(1)}%`]),
)

// Each sample charged to the innermost kvgate function on its stack: that function's own code plus the
// library and Node calls it made (a pino log line, a prom-client observe, an undici request). Samples with no
// kvgate frame (Node's HTTP parser reading a request, timers, GC) are charged to "outside kvgate".
const isKvgate = (url: string): boolean =>
  /\/(src|bench)\/[a-z-]+\/[a-z-]+\.(js|ts)$/.test(url) && !/node_modules\/(?!\.cache)/.test(url)
const byKvgateFunction = new Map<string, number>()
profile.samples.forEach((id, i) => {
  let owner = 'outside kvgate'
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const node = byId.get(at)
    if (node !== undefined && isKvgate(node.callFrame.url)) {
      owner = frameName(node)
      break
    }
  }
  byKvgateFunction.set(owner, (byKvgateFunction.get(owner) ?? 0) + (profile.timeDeltas[i] ?? 0))
})
printTable(
  'Time by innermost kvgate function (its code + what it called)',
  ['function', 'ms', 'share'],
  [...byKvgateFunction.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => [name, (us / 1000).toFixed(1), `${((us / total) * 100).toFixed(1)}%`]),
)

const rows = [...self.entries()]
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)
  .map(([key, us]) => [key, (us / 1000).toFixed(1), `${((us / total) * 100).toFixed(1)}%`])
printTable(`Self time, ${(total / 1e6).toFixed(2)} s sampled`, ['function', 'ms', 'share'], rows)

if (callersOf !== '') {
  const chains = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)
    if (node === undefined || node.callFrame.functionName !== callersOf) return
    const chain: string[] = []
    for (let at = parentOf.get(id); at !== undefined && chain.length < 5; at = parentOf.get(at)) {
      const parent = byId.get(at)
      if (parent !== undefined) chain.push(frameName(parent))
    }
    const key = chain.join(' < ')
    chains.set(key, (chains.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  printTable(
    `Callers of ${callersOf}`,
    ['chain (innermost first)', 'ms'],
    [...chains.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([chain, us]) => [chain, (us / 1000).toFixed(1)]),
  )
}
