import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Command } from 'commander'
import { createScaledClock, createSystemClock } from '../core/index.js'
import { toKvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import type { CommonFlags } from './cli-options.js'
import {
  addRunOptions,
  addWorkloadOptions,
  benchJson,
  failureLine,
  positiveNumber,
  requestHeaders,
  runOptionsFrom,
  sloSpec,
  userSampleLine,
  workloadOptionsFrom,
} from './cli-options.js'
import { formatSummary, recordsToCsv } from './format.js'
import { prepareWorkload } from './prepare-workload.js'
import { createProgress } from './progress.js'
import { parseSlo, summarize } from './results.js'
import { createAgent, probeServer } from './runner.js'
import { isClosedLoop, runWorkload } from './run-workload.js'

interface RunFlags extends CommonFlags {
  url?: string
  outputJson?: string
  outputCsv?: string
  speed?: number
  saveResult: boolean
  resultDir?: string
  resultFilename?: string
}

/** `bench` without `--client-max-tokens` keeps its exact lengths: runs stay comparable with older ones. */
export const DEFAULT_RUN_CLIENT_MAX_TOKENS = 'exact'

/** vllm bench serve's result file name: `{label}-{rate}qps[-concurrency{N}]-{model}-{YYYYmmdd-HHMMSS}.json`. */
export function resultFileName(
  flags: Pick<RunFlags, 'requestRate' | 'maxConcurrency'>,
  model: string,
  now: Date,
): string {
  const pad = (n: number) => String(n).padStart(2, '0')
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`
  const rate = flags.requestRate !== undefined ? String(flags.requestRate) : 'trace'
  const concurrency = flags.maxConcurrency !== undefined ? `-concurrency${flags.maxConcurrency}` : ''
  const base = (model.split('/').pop() ?? model).replace(/[^\w.-]+/g, '_')
  return `kvgate-bench-${rate}qps${concurrency}-${base}-${stamp}.json`
}

/** `kvgate bench run` (the default subcommand): replay a workload against one server and print the summary. */
export function createRunCommand(): Command {
  // The flags live on `run` rather than on `bench` because commander would otherwise give `bench` the `-i`
  // that follows `compare`.
  const run = new Command('run').description('replay a workload against one server and print the summary (the default)')
  addRunOptions(addWorkloadOptions(run), DEFAULT_RUN_CLIENT_MAX_TOKENS)
    .option('-u, --url <url>', 'server base URL (kvgate or vLLM), e.g. http://127.0.0.1:8080')
    .option('--output-json <file>', 'write every figure (summary, per user, per request) as JSON')
    .option('--output-csv <file>', 'write one CSV row per request')
    .option('--save-result', "write the JSON export under vllm bench serve's file name", false)
    .option('--result-dir <dir>', 'folder for --save-result (default: the current one)')
    .option('--result-filename <name>', 'file name for --save-result')
    .option(
      '--speed <x>',
      'the server runs emulated time x times faster (kvgate sim --speed): replay and report in emulated time',
      positiveNumber('--speed'),
    )
    .action(async (flags: RunFlags) => {
      if (flags.inputFile === undefined || flags.url === undefined) {
        run.error('error: kvgate bench needs -i/--input-file and -u/--url (or a subcommand: compare, analyze)')
      }
      const fail = (message: string): void => {
        process.stderr.write(`kvgate bench: ${message}\n`)
        process.exitCode = 1
      }
      try {
        const counter = createWordPieceTokenCounter()
        const workload = await prepareWorkload(
          workloadOptionsFrom(flags, flags.inputFile as string, flags.numClients !== undefined),
          counter,
        )
        if (flags.warmupStep && !isClosedLoop(workload, flags)) {
          fail('--warmup-step needs a closed-loop run (a conversation input, or --num-clients)')
          return
        }
        if (workload.skipped.length > 0) {
          process.stderr.write(
            `skipped ${workload.skipped.length} malformed rows (first: line ${workload.skipped[0]?.line}: ${workload.skipped[0]?.reason})\n`,
          )
        }
        const agent = createAgent(1)
        const probe = await probeServer(flags.url as string, agent, requestHeaders(flags)).finally(() => agent.close())
        if (probe.kind === 'unreachable') {
          fail(`cannot reach ${flags.url}: ${probe.message}`)
          return
        }
        if (probe.kind === 'refused') {
          fail(`${flags.url} answered ${probe.status} to GET /v1/models: ${probe.message} (--api-key, --header)`)
          return
        }
        const progress = createProgress('bench')
        const result = await runWorkload(workload, {
          baseUrl: flags.url as string,
          counter,
          clock: flags.speed !== undefined ? createScaledClock(flags.speed) : createSystemClock(),
          seed: flags.seed,
          ...runOptionsFrom(flags),
          onTotal: progress.onTotal,
          onRecord: progress.onRecord,
        }).finally(() => progress.stop())
        const summary = summarize(result, parseSlo(sloSpec(flags)))
        if (workload.userSample !== undefined) {
          process.stdout.write(`${userSampleLine(workload.userSample, workload.kind)}\n`)
        }
        process.stdout.write(`${formatSummary(summary)}\n`)
        if (workload.skipped.length > 0) process.stdout.write(`malformed rows skipped = ${workload.skipped.length}\n`)
        if (result.abandonedConversations)
          process.stdout.write(`abandoned_conversations = ${result.abandonedConversations}\n`)
        if (result.unfinishedConversations)
          process.stdout.write(
            `unfinished_conversations = ${result.unfinishedConversations} (--stop-rule ${flags.stopRule})\n`,
          )
        const json = () =>
          `${JSON.stringify(
            benchJson(result, summary, {
              input_file: flags.inputFile,
              format: workload.format,
              skipped_rows: workload.skipped,
              ...(workload.userSample !== undefined ? { user_sample: workload.userSample } : {}),
            }),
            null,
            2,
          )}\n`
        if (flags.outputJson !== undefined) writeFileSync(flags.outputJson, json())
        if (flags.outputCsv !== undefined) writeFileSync(flags.outputCsv, recordsToCsv(result.records))
        if (flags.saveResult) {
          const file = join(
            flags.resultDir ?? '.',
            flags.resultFilename ?? resultFileName(flags, result.model, new Date()),
          )
          mkdirSync(dirname(file), { recursive: true })
          writeFileSync(file, json())
          process.stdout.write(`result: ${file}\n`)
        }
        const failure = failureLine(summary, result.records)
        if (failure !== undefined) fail(failure)
      } catch (err) {
        fail(toKvgateError(err).message)
      }
    })
  return run
}
