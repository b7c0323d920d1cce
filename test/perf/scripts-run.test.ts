import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

// The perf scripts end to end at toy sizes: they start their processes, print their table and exit. No
// figure is asserted (speed is the benchmark's business), only that every target produced a row.

const run = promisify(execFile)
const script = (name: string, args: string[], nodeArgs: string[] = []) =>
  run(process.execPath, [...nodeArgs, '--import', 'tsx', `bench/perf/${name}`, ...args], { timeout: 60_000 })

describe('perf scripts', () => {
  it('pass-through compares direct, nginx and kvgate in one table', async () => {
    const { stdout } = await script('passthrough.ts', [
      '--upstream',
      'stub',
      '--policies',
      'fifo',
      '--reps',
      '1',
      '--duration-ms',
      '200',
      '--warmup-ms',
      '50',
      '--concurrency',
      '2',
    ])
    expect(stdout).toMatch(/^\| direct +\| 2 /m)
    expect(stdout).toMatch(/^\| kvgate-fifo +\| 2 /m)
  })

  it('hostile bodies: the keyless 2 MB nested body next to a legitimate client, with and without keys', async () => {
    const { stdout } = await script('hostile-bodies.ts', ['--reps', '1', '--duration-ms', '300', '--attackers', '1'])
    expect(stdout).toMatch(/^\| kvgate requireAuth +\| /m)
    expect(stdout).toMatch(/^\| kvgate no keys +\| /m)
  })

  it('admission microbenchmark reports every policy and queue size', async () => {
    const { stdout } = await script(
      'admission.ts',
      ['--reps', '1', '--decisions', '20', '--queued', '10,100', '--users', '50', '--policies', 'fifo,vtc'],
      ['--expose-gc'],
    )
    expect(stdout).toMatch(/^\| fifo +\| 100 +\| 50 /m)
    expect(stdout).toMatch(/^\| vtc +\| 10 +\| 10 /m)
  })
})
