import { writeFileSync } from 'node:fs'
import { Command } from 'commander'
import { createScaledClock, createSystemClock } from '../core/index.js'
import { toKvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { createAnalyzeCommand } from './analyze-command.js'
import { createCompareCommand } from './compare-command.js'
import { formatSummary, recordsToCsv } from './format.js'
import type { CommonFlags } from './cli-options.js'
import {
  addRunOptions,
  addWorkloadOptions,
  benchJson,
  createProgress,
  positiveNumber,
  runOptionsFrom,
  workloadOptionsFrom,
} from './cli-options.js'
import { prepareWorkload } from './prepare-workload.js'
import { parseSlo, summarize } from './results.js'
import { runWorkload } from './run-workload.js'

export function createBenchCommand(): Command {
  const bench = new Command('bench').description(
    "load generator: replay traces or run multi-turn conversations against an OpenAI-compatible server, print vLLM's summary plus 429s, goodput and fairness",
  )
  // `kvgate bench -i FILE -u URL` runs the default subcommand `run`. The flags live on `run` rather than on
  // `bench` because commander would otherwise give `bench` the `-i` that follows `compare`.
  const run = new Command('run').description('replay a workload against one server and print the summary (the default)')
  addRunOptions(addWorkloadOptions(run))
    .option('-u, --url <url>', 'server base URL (kvgate or vLLM), e.g. http://127.0.0.1:8080')
    .option('--output-json <file>', 'write every figure (summary, per user, per request) as JSON')
    .option('--output-csv <file>', 'write one CSV row per request')
    .option(
      '--speed <x>',
      'the server runs emulated time x times faster (kvgate sim --speed): replay and report in emulated time',
      positiveNumber('--speed'),
    )
    .action(async (flags: CommonFlags & { url?: string; outputJson?: string; outputCsv?: string; speed?: number }) => {
      if (flags.inputFile === undefined || flags.url === undefined) {
        run.error('error: kvgate bench needs -i/--input-file and -u/--url (or a subcommand: compare, analyze)')
      }
      try {
        const counter = createWordPieceTokenCounter()
        const workload = await prepareWorkload(
          workloadOptionsFrom(flags, flags.inputFile as string, flags.numClients !== undefined),
          counter,
        )
        if (workload.skipped.length > 0) {
          process.stderr.write(
            `skipped ${workload.skipped.length} malformed rows (first: line ${workload.skipped[0]?.line}: ${workload.skipped[0]?.reason})\n`,
          )
        }
        const progress = createProgress('bench')
        const run = await runWorkload(workload, {
          baseUrl: flags.url as string,
          counter,
          clock: flags.speed !== undefined ? createScaledClock(flags.speed) : createSystemClock(),
          seed: flags.seed,
          ...runOptionsFrom(flags),
          onTotal: progress.onTotal,
          onRecord: progress.onRecord,
        })
        progress.stop()
        const summary = summarize(run, parseSlo(flags.slo))
        process.stdout.write(`${formatSummary(summary)}\n`)
        if (workload.skipped.length > 0) process.stdout.write(`malformed rows skipped = ${workload.skipped.length}\n`)
        if (run.abandonedConversations)
          process.stdout.write(`abandoned_conversations = ${run.abandonedConversations}\n`)
        if (flags.outputJson !== undefined) {
          const json = benchJson(run, summary, {
            input_file: flags.inputFile,
            format: workload.format,
            skipped_rows: workload.skipped,
          })
          writeFileSync(flags.outputJson, `${JSON.stringify(json, null, 2)}\n`)
        }
        if (flags.outputCsv !== undefined) writeFileSync(flags.outputCsv, recordsToCsv(run.records))
      } catch (err) {
        const error = toKvgateError(err)
        process.stderr.write(`kvgate bench: ${error.message}\n`)
        process.exitCode = 1
      }
    })

  bench.addCommand(run, { isDefault: true })
  bench.addCommand(createCompareCommand())
  bench.addCommand(createAnalyzeCommand())
  return bench
}
