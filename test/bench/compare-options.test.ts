import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { afterAll, describe, expect, it } from 'vitest'
import type { SetupResult } from '../../src/bench/compare.js'
import { comparisonRows } from '../../src/bench/report.js'
import { addSimOptions, simOptionsFromCommand } from '../../src/bench/sim-options.js'
import { createSimCommand } from '../../src/sim/index.js'
import { runBench } from './cli-harness.js'

const dir = mkdtempSync(join(tmpdir(), 'kvgate-compare-options-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('compare takes every kvgate sim option', () => {
  const parse = (args: string[]) => {
    const command = new Command('compare').exitOverride().option('--speed <x>').option('--model <name>')
    const keys = addSimOptions(command)
    command.parse(args, { from: 'user' })
    return { command, keys }
  }

  it("copies the emulator's own flags (all but address, seed, speed, model, config, log level)", () => {
    const { command, keys } = parse([])
    const simFlags = createSimCommand()
      .options.map((o) => o.long as string)
      .filter((f) => !['--port', '--host', '--seed', '--speed', '--model', '--config', '--log-level'].includes(f))
    expect(command.options.map((o) => o.long)).toEqual(expect.arrayContaining(simFlags))
    expect(keys).toContain('maxModelLen')
    expect(command.options.filter((o) => o.long === '--speed')).toHaveLength(1)
  })

  it('routes each value where kvgate sim puts it, and only the flags given', () => {
    const { command, keys } = parse([
      '--max-model-len',
      '16384',
      '--num-gpu-blocks',
      '400',
      '--fault-error-rate',
      '0.25',
      '--die-after-ms',
      '90000',
      '--no-enable-prefix-caching',
    ])
    expect(simOptionsFromCommand(command, keys)).toEqual({
      maxModelLen: 16384,
      numGpuBlocks: 400,
      enablePrefixCaching: false,
      faults: { errorRate: 0.25, dieAfterMs: 90000 },
    })
    const none = parse([])
    expect(simOptionsFromCommand(none.command, none.keys)).toEqual({})
  })

  it('--sim-config reads a kvgate sim --config file, flags winning over it', () => {
    const file = join(dir, 'sim.yaml')
    writeFileSync(file, 'numGpuBlocks: 100\nlatency: { stepFixedMs: 3 }\noutputLength: { type: constant, value: 9 }\n')
    const { command, keys } = parse(['--sim-config', file, '--num-gpu-blocks', '200'])
    expect(simOptionsFromCommand(command, keys)).toEqual({
      numGpuBlocks: 200,
      latency: { stepFixedMs: 3 },
      outputLength: { type: 'constant', value: 9 },
    })
  })

  it("--max-model-len reaches each setup's emulator: a 10k-token prompt is served instead of refused", async () => {
    const trace = join(dir, 'long.csv')
    writeFileSync(
      trace,
      'Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,10000,4,10004,Conversation log\n',
    )
    const args = ['compare', '-i', trace, '--policies', 'fifo', '--speed', '20', '--client-max-tokens', 'exact']
    const refused = await runBench([...args, '--output-json', join(dir, 'refused.json')])
    expect(refused.exitCode).toBe(1) // the emulator's default 8192-token context refuses it
    const direct = (
      JSON.parse(readFileSync(join(dir, 'refused.json'), 'utf8')) as {
        setups: { summary: { failures_by_status: object } }[]
      }
    ).setups[0]
    expect(direct?.summary.failures_by_status).toEqual({ 400: 1 })

    const json = join(dir, 'served.json')
    const served = await runBench([...args, '--max-model-len', '16384', '--output-json', json])
    expect(served.exitCode).toBeUndefined()
    const setups = (
      JSON.parse(readFileSync(json, 'utf8')) as {
        setups: { name: string; summary: { completed: number }; goodput_vs_direct?: number }[]
      }
    ).setups
    expect(setups.map((s) => [s.name, s.summary.completed])).toEqual([
      ['direct', 1],
      ['fifo', 1],
    ])
    expect(setups[1]?.goodput_vs_direct).toBeTypeOf('number')
    expect(served.stderr).toMatch(/^compare: direct done in \d+\.\d s: 1 requests, 1 completed/m)
    expect(served.stderr).toMatch(/^compare: fifo done in .*× direct\)/m)
  }, 60_000)
})

describe('goodput against direct', () => {
  const setup = (name: string, goodputVsDirect?: number): SetupResult =>
    ({
      name,
      summary: {
        requests: 10,
        completed: 10,
        rate_429: 0,
        failed: 0,
        goodput_rps: 1,
        goodput_ratio: 0.5,
        jain_index: 1,
        table: { ttft_ms: { '50%': 10 } },
      },
      run: { records: [] },
      preemptions: 0,
      maxKvUsage: 0.5,
      ...(goodputVsDirect !== undefined ? { goodputVsDirect } : {}),
    }) as unknown as SetupResult

  it('is a column of the table and the report, flagged below 1.0', () => {
    const { header, rows } = comparisonRows([setup('direct'), setup('fifo', 1.25), setup('vtc', 0.8)])
    const at = header.indexOf('goodput_vs_direct')
    expect(at).toBeGreaterThan(0)
    expect(rows.map((r) => r[at])).toEqual(['-', '1.25', '0.80 below'])
  })
})
