/**
 * The admission-quality runs of docs/admission-quality.md: each workload through `kvgate bench compare` with
 * realistic clients (`--client-max-tokens none`), setups `direct`, `fifo`, `vtc` and `oracle` side by side in
 * one run, then one table per workload with the figures the doc quotes.
 *
 *   npx tsx bench/admission-quality.ts                       # every workload, JSON in out/admission-quality/
 *   npx tsx bench/admission-quality.ts --only demo,long-prompts --extra '--gateway-config my.yaml'
 *   npx tsx bench/admission-quality.ts --cli /elsewhere/dist/cli.js --out out/before    # another build
 *   npx tsx bench/admission-quality.ts --repeat 3 --speed 2 --extra --slo-admission     # medians of 3, slower
 *
 * Each run is one `node dist/cli.js bench compare …` (printed before it runs), so any row can be reproduced
 * alone; `--repeat N` runs each N times and prints medians (a shared machine's stalls move single runs by
 * ±15%). The overload factor is what direct kept in the backend on average (Little's law: Σ latency / runtime
 * requests, each a mean request's prompt + answer) over the KV cache's capacity.
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

const COMMON = ['--policies', 'fifo,vtc', '--oracle', '--client-max-tokens', 'none', '--deadline-ms', '3000']

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
  requests: {
    outcome: string
    ttftMs?: number
    latencyMs?: number
    startMs: number
    inputNumTokens: number
    outputNumTokens?: number
  }[]
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

const median = (values: number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/**
 * A markdown table of one or more compare runs of the same workload (repeats): per setup the median of each
 * figure, with the range of requests in SLO when there are several runs, and the most preemptions seen.
 */
export function qualityTable(files: readonly string[], capacityTokens: number): string {
  const runs = files.map((file) => (JSON.parse(readFileSync(file, 'utf8')) as { setups: SetupJson[] }).setups)
  const f = (v: number | undefined, digits = 2) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits))
  const lines = [
    '| setup | requests | completed | 429 | in SLO | vs direct | vs oracle | TTFT p99 admitted (ms) | preemptions | peak KV | coverage |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const name of runs[0]?.map((s) => s.name) ?? []) {
    const setups = runs.map((r) => r.find((s) => s.name === name)).filter((s): s is SetupJson => s !== undefined)
    const pick = (read: (s: SetupJson) => number | undefined) => median(setups.map((s) => read(s) ?? Number.NaN))
    const inSlo = setups.map((s) => Math.round(s.summary.goodput_ratio * s.summary.requests))
    const range = setups.length > 1 ? ` (${Math.min(...inSlo)}–${Math.max(...inSlo)})` : ''
    const ttftP99 = pick((s) => p99(s.requests.filter((r) => r.outcome === 'completed').map((r) => r.ttftMs as number)))
    lines.push(
      `| ${name} | ${f(
        pick((s) => s.summary.requests),
        0,
      )} | ${f(
        pick((s) => s.summary.completed),
        0,
      )} | ${f(
        pick((s) => s.summary.rejected_429),
        0,
      )} | ${f(median(inSlo), 0)}${range} | ${f(pick((s) => s.goodput_vs_direct))} | ${f(pick((s) => s.goodput_vs_oracle))} | ${f(ttftP99, 0)} | ${Math.max(...setups.map((s) => s.preemptions))} | ${f(
        pick((s) => s.max_kv_usage * 100),
        0,
      )}% | ${f(pick((s) => s.predictor_coverage))} |`,
    )
  }
  const directs = runs.map((r) => r.find((s) => s.name === 'direct')).filter((s): s is SetupJson => s !== undefined)
  if (directs.length > 0) {
    // Little's law: requests in the system on average under direct, each holding a mean request's KV, over
    // what the KV cache holds. Open or closed loop alike, above 1 the backend was offered more than it holds.
    const factor = median(
      directs.map((d) => {
        const done = d.requests.filter((r) => r.outcome === 'completed')
        const inSystem = done.reduce((n, r) => n + (r.latencyMs ?? 0), 0) / 1000 / d.summary.runtime_sec
        const meanNeed = done.reduce((n, r) => n + r.inputNumTokens + (r.outputNumTokens ?? 0), 0) / done.length
        return (inSystem * meanNeed) / capacityTokens
      }),
    )
    lines.push('', `overload (direct: requests in the system × mean KV need / KV capacity): ${f(factor, 1)}×`)
  }
  return lines.join('\n')
}

function main(): void {
  const cli = flag('--cli') ?? 'dist/cli.js'
  const out = flag('--out') ?? 'out/admission-quality'
  const only = flag('--only')?.split(',')
  const extra = flag('--extra')?.split(' ').filter(Boolean) ?? []
  const repeat = Number(flag('--repeat') ?? 1)
  // Emulated time runs this much faster than real time; lower is slower but less moved by a busy machine.
  const speed = flag('--speed') ?? '4'
  // --tables-only: print the tables of runs already in --out (after a change to this script, or to compare).
  const tablesOnly = process.argv.includes('--tables-only')
  mkdirSync(out, { recursive: true })
  for (const workload of WORKLOADS) {
    if (only !== undefined && !only.includes(workload.name)) continue
    const files: string[] = []
    for (let run = 1; run <= repeat; run++) {
      const json = join(out, `${workload.name}${repeat > 1 ? `-${run}` : ''}.json`)
      files.push(json)
      if (tablesOnly) continue
      const args = [
        cli,
        'bench',
        'compare',
        ...workload.args,
        ...COMMON,
        '--speed',
        speed,
        ...extra,
        '--output-json',
        json,
      ]
      process.stderr.write(`\n$ node ${args.join(' ')}\n`)
      const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] })
      if (result.status !== 0) process.stderr.write(`${workload.name}: compare exited with ${result.status}\n`)
    }
    const blocks = Number(workload.args[workload.args.indexOf('--num-gpu-blocks') + 1])
    process.stdout.write(`\n### ${workload.name}\n\n${qualityTable(files, blocks * 16)}\n`)
  }
}

main()
