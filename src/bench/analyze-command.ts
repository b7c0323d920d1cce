import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Command, InvalidArgumentError, Option } from 'commander'
import { toKvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { analyzeWorkload, formatAnalysis } from './analysis.js'
import { renderAnalysisReport } from './analysis-report.js'
import type { CommonFlags } from './cli-options.js'
import { addWorkloadOptions, positiveInteger, positiveNumber, workloadOptionsFrom } from './cli-options.js'
import { DEFAULT_HOST_MEMORY_GIB, DEFAULT_QUEUE_WINDOW_SEC } from './conversation-kv.js'
import { DEFAULT_KV_MODEL, KV_MODELS, kvCost } from './kv-models.js'
import { prepareWorkload } from './prepare-workload.js'

interface AnalyzeFlags extends CommonFlags {
  outputJson?: string
  report?: string
  blockSizes: string
  kvModel: string
  kvBytesPerToken?: number
  hostMemoryGb: number[]
  queueWindowSec: number
  numClients?: number
  maxActiveConversations?: number
}

/** A comma-separated list of numbers > 0, for `--host-memory-gb 50,100,200`. */
function positiveList(name: string) {
  return (value: string): number[] => {
    const list = value.split(',').map((v) => Number(v.trim()))
    if (list.length === 0 || list.some((n) => !Number.isFinite(n) || n <= 0)) {
      throw new InvalidArgumentError(`${name} must be a comma-separated list of numbers > 0, e.g. 50,100,200`)
    }
    return list
  }
}

function nonNegativeNumber(name: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${name} must be a number ≥ 0`)
    return n
  }
}

/** `kvgate bench analyze`: describe a workload without sending it (see analysis.ts and conversation-kv.ts). */
export function createAnalyzeCommand(): Command {
  const analyze = new Command('analyze')
    .description(
      'workload analysis: request rate, per-user share and Zipf fit, conversations, lengths, prefix sharing, and for conversations the KV each request carries, reuse distances and host-memory tier hit rates',
    )
    .argument('<trace>', 'the trace or workload file')
    .option('--output-json <file>', 'write the analysis as JSON')
    .option('--report <file>', 'write an HTML report (tables and charts) here')
    .option('--block-sizes <list>', 'block sizes for the prefix-sharing figures', '8,16,32')
    .addOption(
      new Option('--kv-model <name>', 'model whose KV bytes per token the conversation-KV figures use')
        .choices(KV_MODELS.map((m) => m.name))
        .default(DEFAULT_KV_MODEL),
    )
    .option(
      '--kv-bytes-per-token <n>',
      'KV bytes per token, instead of a --kv-model',
      positiveNumber('--kv-bytes-per-token'),
    )
    .option(
      '--host-memory-gb <list>',
      'host-memory KV tier sizes in GiB for the hit rates',
      positiveList('--host-memory-gb'),
      [...DEFAULT_HOST_MEMORY_GIB],
    )
    .option(
      '--queue-window-sec <s>',
      'queue-aware policy on traces: requests arrived within this many seconds after the one served count as waiting',
      nonNegativeNumber('--queue-window-sec'),
      DEFAULT_QUEUE_WINDOW_SEC,
    )
    .option(
      '--num-clients <n>',
      'conversation inputs: clients of the closed loop whose order the tier sees (as `kvgate bench --num-clients`)',
      positiveInteger('--num-clients'),
    )
    .option(
      '--max-active-conversations <n>',
      'conversation inputs: conversations the closed loop keeps open',
      positiveInteger('--max-active-conversations'),
    )
  addWorkloadOptions(analyze, false).action(async (trace: string, flags: AnalyzeFlags) => {
    try {
      const counter = createWordPieceTokenCounter()
      const workload = await prepareWorkload(workloadOptionsFrom(flags, trace, false), counter)
      const blockSizes = flags.blockSizes
        .split(',')
        .map(Number)
        .filter((n) => Number.isInteger(n) && n > 0)
      const analysis = analyzeWorkload(workload, {
        blockSizes,
        conversationKv: {
          kv: kvCost({
            model: flags.kvModel,
            ...(flags.kvBytesPerToken !== undefined ? { bytesPerToken: flags.kvBytesPerToken } : {}),
          }),
          hostMemoryGiB: flags.hostMemoryGb,
          queueWindowSec: flags.queueWindowSec,
          closedLoop: {
            numClients: flags.numClients ?? 1,
            ...(flags.maxActiveConversations !== undefined
              ? { maxActiveConversations: flags.maxActiveConversations }
              : {}),
          },
        },
      })
      process.stdout.write(`${formatAnalysis(analysis)}\n`)
      if (flags.outputJson !== undefined) {
        mkdirSync(dirname(flags.outputJson), { recursive: true })
        writeFileSync(flags.outputJson, `${JSON.stringify(analysis, null, 2)}\n`)
      }
      if (flags.report !== undefined) {
        mkdirSync(dirname(flags.report), { recursive: true })
        writeFileSync(flags.report, renderAnalysisReport(analysis, { title: 'kvgate bench analyze', workload: trace }))
        process.stdout.write(`report: ${flags.report}\n`)
      }
    } catch (err) {
      process.stderr.write(`kvgate bench analyze: ${toKvgateError(err).message}\n`)
      process.exitCode = 1
    }
  })
  return analyze
}
