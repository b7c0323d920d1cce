import { fileURLToPath } from 'node:url'
import { createBenchCommand } from '../../src/bench/index.js'
import { type Captured, captureOutput } from '../support/capture.js'

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

/** Run `kvgate bench ARGS` in-process and return what it printed and the exit code it set. */
export function runBench(args: string[]): Promise<Captured> {
  return captureOutput(() => createBenchCommand().exitOverride().parseAsync(args, { from: 'user' }))
}
