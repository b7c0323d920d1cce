import { Command } from 'commander'

/** Placeholder until the gateway lands: `kvgate bench compare`. */
export function createCompareCommand(): Command {
  return new Command('compare').description('run one workload directly and through kvgate with each policy')
}
