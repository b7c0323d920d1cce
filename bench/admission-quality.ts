/**
 * The admission-quality runs of docs/admission-quality.md: each workload through `kvgate bench compare` with
 * realistic clients (`--client-max-tokens none`), setups `direct`, `fifo`, `vtc` and `oracle` side by side in
 * one run, then one table per workload with the figures the doc quotes.
 *
 *   npx tsx bench/admission-quality.ts                       # every workload, JSON in out/admission-quality/
 *   npx tsx bench/admission-quality.ts --only demo,long-prompts --extra '--gateway-config my.yaml'
 *   npx tsx bench/admission-quality.ts --cli /elsewhere/dist/cli.js --out out/before    # another build
 *
 * Each run is one `node dist/cli.js bench compare …` (printed before it runs), so any row can be reproduced
 * alone. The overload factor is direct's runtime over the span of its requests' start times: how long the
 * backend took to serve what was offered in that span (≥ 2 means it was offered at least twice what it serves).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

interface Workload {
  readonly name: string
  readonly args: readonly string[]
}

/** The same emulator options for every setup; only the workload's own shaping differs. */
export const WORKLOADS: readonly Workload[] = [
  {
    name: 'demo',
    args: ['-i', 'config/workloads/bursty-multi-user.json', '--num-gpu-blocks', '400'],
  },
  {
    name: 'multi-turn',
    args: [
      '-i',
      'config/workloads/multi-turn-chat.json',
      '--num-clients',
      '24',
      '--max-active-conversations',
      '60',
      '--num-gpu-blocks',
      '400',
    ],
  },
  {
    name: 'seed000-trace',
    args: ['-i', 'config/workloads/chat-trace-seed000.txt', '--time-scale', '0.05', '--num-gpu-blocks', '800'],
  },
  {
    name: 'long-prompts',
    args: ['-i', 'config/workloads/long-prompts.json', '--num-gpu-blocks', '4096', '--max-model-len', '32768'],
  },
]

const COMMON = [
  '--policies',
  'fifo,vtc',
  '--oracle',
  '--client-max-tokens',
  'none',
  '--speed',
  '4',
  '--deadline-ms',
  '3000',
]

interface SetupJson {
  name: string
  preemptions: number
  max_kv_usage: number
  goodput_vs_direct?: number
  goodput_vs_oracle?: number
  predictor_coverage?: number
  over_reservation?: number
  summary: {
    requests: number
    completed: number
    rejected_429: number
    goodput_ratio: number
    runtime_sec: number
  }
  requests: { outcome: string; ttftMs?: number; startMs: number }[]
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function p99(values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const position = (sorted.length - 1) * 0.99
  const lo = Math.floor(position)
  const a = sorted[lo] as number
  return a + ((sorted[Math.ceil(position)] as number) - a) * (position - lo)
}

/** A markdown table of one compare run's JSON. */
export function qualityTable(file: string): string {
  const { setups } = JSON.parse(readFileSync(file, 'utf8')) as { setups: SetupJson[] }
  const f = (v: number | undefined, digits = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits))
  const lines = [
    '| setup | requests | completed | 429 | in SLO | vs direct | vs oracle | TTFT p99 admitted (ms) | preemptions | peak KV | coverage |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const s of setups) {
    const inSlo = Math.round(s.summary.goodput_ratio * s.summary.requests)
    const ttfts = s.requests.filter((r) => r.outcome === 'completed').map((r) => r.ttftMs as number)
    lines.push(
      `| ${s.name} | ${s.summary.requests} | ${s.summary.completed} | ${s.summary.rejected_429} | ${inSlo} | ${f(s.goodput_vs_direct)} | ${f(s.goodput_vs_oracle)} | ${f(p99(ttfts), 0)} | ${s.preemptions} | ${f(s.max_kv_usage * 100, 0)}% | ${f(s.predictor_coverage)} |`,
    )
  }
  const direct = setups.find((s) => s.name === 'direct')
  if (direct !== undefined) {
    const span = Math.max(...direct.requests.map((r) => r.startMs)) / 1000
    lines.push('', `overload factor (direct's runtime / span of starts): ${f(direct.summary.runtime_sec / span, 1)}`)
  }
  return lines.join('\n')
}

function main(): void {
  const cli = flag('--cli') ?? 'dist/cli.js'
  const out = flag('--out') ?? 'out/admission-quality'
  const only = flag('--only')?.split(',')
  const extra = flag('--extra')?.split(' ').filter(Boolean) ?? []
  mkdirSync(out, { recursive: true })
  for (const workload of WORKLOADS) {
    if (only !== undefined && !only.includes(workload.name)) continue
    const json = join(out, `${workload.name}.json`)
    const args = [cli, 'bench', 'compare', ...workload.args, ...COMMON, ...extra, '--output-json', json]
    process.stderr.write(`\n$ node ${args.join(' ')}\n`)
    const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] })
    if (run.status !== 0) process.stderr.write(`${workload.name}: compare exited with ${run.status}\n`)
    process.stdout.write(`\n### ${workload.name}\n\n${qualityTable(json)}\n`)
  }
}

main()
