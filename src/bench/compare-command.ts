import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Command } from 'commander'
import { parse as parseYaml } from 'yaml'
import { toKvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import type { CommonFlags } from './cli-options.js'
import {
  addRunOptions,
  addWorkloadOptions,
  benchJson,
  createProgress,
  positiveInteger,
  positiveNumber,
  runOptionsFrom,
  workloadOptionsFrom,
} from './cli-options.js'
import type { SetupResult } from './compare.js'
import { DEFAULT_COMPARE_DEADLINE_MS, runCompare } from './compare.js'
import { formatSummary } from './format.js'
import { prepareWorkload } from './prepare-workload.js'
import { formatComparison, renderReport } from './report.js'
import { parseSlo } from './results.js'

interface CompareFlags extends CommonFlags {
  url?: string
  policies?: string
  speed: number
  numGpuBlocks?: number
  maxNumSeqs?: number
  blockSize?: number
  deadlineMs: number
  gatewayConfig?: string
  report?: string
  outputJson?: string
  verbose: boolean
}

/** Without --slo, goodput counts requests whose first token came within 2 s (emulated): an interactive bar. */
export const DEFAULT_COMPARE_SLO = 'ttft:2000'

export function createCompareCommand(): Command {
  const compare = new Command('compare').description(
    'run one workload directly against a backend and through kvgate with each policy; print one table, write an HTML report',
  )
  addRunOptions(addWorkloadOptions(compare))
    .option('-u, --url <url>', 'an existing backend (vLLM or kvgate sim); default: a fresh emulator per setup')
    .option('--policies <list>', 'kvgate policies to run, comma-separated (default: every registered policy)')
    .option(
      '--speed <x>',
      'emulated time runs x times faster (emulator, gateway and replay share the clock)',
      positiveNumber('--speed'),
      1,
    )
    .option('--num-gpu-blocks <n>', 'emulator KV blocks (small = overload)', positiveInteger('--num-gpu-blocks'))
    .option('--max-num-seqs <n>', 'emulator batch size', positiveInteger('--max-num-seqs'))
    .option('--block-size <n>', 'emulator block size', positiveInteger('--block-size'))
    .option(
      '--deadline-ms <ms>',
      "kvgate's queue deadline before a 429 (emulated ms)",
      positiveInteger('--deadline-ms'),
      DEFAULT_COMPARE_DEADLINE_MS,
    )
    .option(
      '--gateway-config <file>',
      'YAML merged over the gateway config compare builds (admission, predictor, policy options, users)',
    )
    .option('--report <file>', 'write the HTML report here')
    .option('--output-json <file>', "write every setup's figures (summary, per user, per request) and samples as JSON")
    .option('--verbose', "also print each setup's full summary", false)
    .action(async (flags: CompareFlags) => {
      if (flags.inputFile === undefined) compare.error('error: kvgate bench compare needs -i/--input-file')
      try {
        const counter = createWordPieceTokenCounter()
        const workload = await prepareWorkload(
          workloadOptionsFrom(flags, flags.inputFile as string, flags.numClients !== undefined),
          counter,
        )
        const slo = parseSlo(flags.slo ?? DEFAULT_COMPARE_SLO)
        const gatewayConfig =
          flags.gatewayConfig !== undefined
            ? (parseYaml(readFileSync(flags.gatewayConfig, 'utf8')) as Record<string, unknown>)
            : undefined
        let progress: ReturnType<typeof createProgress> | undefined
        const results = await runCompare({
          workload,
          counter,
          seed: flags.seed,
          ...(flags.policies !== undefined
            ? {
                policies: flags.policies
                  .split(',')
                  .map((p) => p.trim())
                  .filter(Boolean),
              }
            : {}),
          ...(flags.url !== undefined ? { backendUrl: flags.url } : {}),
          sim: {
            ...(flags.numGpuBlocks !== undefined ? { numGpuBlocks: flags.numGpuBlocks } : {}),
            ...(flags.maxNumSeqs !== undefined ? { maxNumSeqs: flags.maxNumSeqs } : {}),
            ...(flags.blockSize !== undefined ? { blockSize: flags.blockSize } : {}),
          },
          speed: flags.speed,
          deadlineMs: flags.deadlineMs,
          ...(gatewayConfig !== undefined ? { gatewayConfig } : {}),
          slo,
          run: {
            ...runOptionsFrom(flags),
            onTotal: (n) => progress?.onTotal(n),
            onRecord: (r) => progress?.onRecord(r),
          },
          onSetupStart(name) {
            if (!process.stderr.isTTY) process.stderr.write(`compare: running ${name}…\n`)
            progress = createProgress(name.padEnd(12))
          },
          onSetupDone(result: SetupResult) {
            progress?.stop()
            if (flags.verbose) process.stdout.write(`\n${result.name}\n${formatSummary(result.summary)}\n`)
          },
        })
        const workloadLine = `${flags.inputFile} (${workload.format}, ${workload.kind === 'trace' ? `${workload.requests.length} requests, open loop` : `${workload.conversations.length} conversations, closed loop`})`
        const setupNotes = [
          flags.url !== undefined
            ? `backend ${flags.url}`
            : `a fresh emulator per setup${flags.numGpuBlocks ? `, ${flags.numGpuBlocks} KV blocks` : ''}, speed ${flags.speed}× (times are emulated ms)`,
          `kvgate queue deadline ${flags.deadlineMs} ms; goodput SLO ${flags.slo ?? DEFAULT_COMPARE_SLO}; TTFT over admitted (completed) requests`,
        ]
        const notes = [`workload ${workloadLine}`, ...setupNotes]
        process.stdout.write(`${notes.join('\n')}\n\n${formatComparison(results)}\n`)
        if (flags.report !== undefined) {
          mkdirSync(dirname(flags.report), { recursive: true })
          writeFileSync(
            flags.report,
            renderReport(results, { title: 'kvgate bench compare', workload: workloadLine, notes: setupNotes }),
          )
          process.stdout.write(`\nreport: ${flags.report}\n`)
        }
        if (flags.outputJson !== undefined) {
          mkdirSync(dirname(flags.outputJson), { recursive: true })
          const json = {
            input_file: flags.inputFile,
            notes,
            setups: results.map((r) => ({
              name: r.name,
              preemptions: r.preemptions,
              max_kv_usage: r.maxKvUsage,
              samples: r.samples,
              ...(benchJson(r.run, r.summary, {}) as object),
            })),
          }
          writeFileSync(flags.outputJson, `${JSON.stringify(json, null, 2)}\n`)
        }
      } catch (err) {
        process.stderr.write(`kvgate bench compare: ${toKvgateError(err).message}\n`)
        process.exitCode = 1
      }
    })
  return compare
}
