import { Command } from 'commander'
import { createAnalyzeCommand } from './analyze-command.js'
import { createCompareCommand } from './compare-command.js'
import { createRunCommand } from './run-command.js'

export function createBenchCommand(): Command {
  const bench = new Command('bench').description(
    "load generator: replay traces or run multi-turn conversations against an OpenAI-compatible server, print vLLM's summary plus 429s, goodput and fairness",
  )
  // `kvgate bench -i FILE -u URL` runs the default subcommand `run`.
  bench.addCommand(createRunCommand(), { isDefault: true })
  bench.addCommand(createCompareCommand())
  bench.addCommand(createAnalyzeCommand())
  return bench
}
