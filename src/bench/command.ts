import { writeFileSync } from 'node:fs'
import { Command } from 'commander'
import { toKvgateError } from '../errors/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import { analyzeWorkload, formatAnalysis } from './analysis.js'
import type { CommonFlags } from './cli-options.js'
import { addWorkloadOptions, workloadOptionsFrom } from './cli-options.js'
import { createCompareCommand } from './compare-command.js'
import { prepareWorkload } from './prepare-workload.js'
import { createRunCommand } from './run-command.js'

export function createBenchCommand(): Command {
  const bench = new Command('bench').description(
    "load generator: replay traces or run multi-turn conversations against an OpenAI-compatible server, print vLLM's summary plus 429s, goodput and fairness",
  )
  // `kvgate bench -i FILE -u URL` runs the default subcommand `run`.
  bench.addCommand(createRunCommand(), { isDefault: true })
  bench.addCommand(createCompareCommand())
  const analyze = new Command('analyze')
    .description('workload analysis: request rate, per-user share and Zipf fit, conversations, lengths, prefix sharing')
    .argument('<trace>', 'the trace or workload file')
    .option('--output-json <file>', 'write the analysis as JSON')
    .option('--block-sizes <list>', 'block sizes for the prefix-sharing figures', '8,16,32')
  addWorkloadOptions(analyze, false).action(
    async (trace: string, flags: CommonFlags & { outputJson?: string; blockSizes: string }) => {
      try {
        const counter = createWordPieceTokenCounter()
        const workload = await prepareWorkload(workloadOptionsFrom(flags, trace, false), counter)
        const blockSizes = flags.blockSizes
          .split(',')
          .map(Number)
          .filter((n) => Number.isInteger(n) && n > 0)
        const analysis = analyzeWorkload(workload, { blockSizes })
        process.stdout.write(`${formatAnalysis(analysis)}\n`)
        if (flags.outputJson !== undefined) writeFileSync(flags.outputJson, `${JSON.stringify(analysis, null, 2)}\n`)
      } catch (err) {
        process.stderr.write(`kvgate bench analyze: ${toKvgateError(err).message}\n`)
        process.exitCode = 1
      }
    },
  )
  bench.addCommand(analyze)
  return bench
}
