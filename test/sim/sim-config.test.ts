import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadSimConfigFile, startSim, validateSimOptions } from '../../src/sim/index.js'
import { simOptionsFromFlags } from '../../src/sim/command.js'

/** The config file (YAML/JSON) and flags: validated, with errors that name the field. */
describe('emulator configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvgate-sim-config-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string, text: string): string => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }

  it('reads YAML and JSON files with latency, output length and faults', () => {
    const yaml = file(
      'sim.yaml',
      [
        'model: llama-8b',
        'numGpuBlocks: 512',
        'latency: { stepFixedMs: 5, prefillTokenMs: 0.02 }',
        'outputLength: { type: lognormal, average: 120, medianRatio: 0.8 }',
        'faults: { errorRate: 0.1 }',
      ].join('\n'),
    )
    expect(loadSimConfigFile(yaml)).toEqual({
      model: 'llama-8b',
      numGpuBlocks: 512,
      latency: { stepFixedMs: 5, prefillTokenMs: 0.02 },
      outputLength: { type: 'lognormal', average: 120, medianRatio: 0.8 },
      faults: { errorRate: 0.1 },
    })
    const json = file('sim.json', JSON.stringify({ outputLength: { type: 'constant', value: 7 } }))
    expect(loadSimConfigFile(json)).toEqual({ outputLength: { type: 'constant', value: 7 } })
  })

  it('names the bad field', () => {
    expect(() => loadSimConfigFile(file('a.yaml', 'numGpuBlocks: many'))).toThrow(
      /a\.yaml: numGpuBlocks: must be integer/,
    )
    expect(() => loadSimConfigFile(file('b.yaml', 'latency: { stepFixedMs: -1 }'))).toThrow(
      /latency\.stepFixedMs: must be >= 0/,
    )
    expect(() => loadSimConfigFile(file('c.yaml', 'blockSzie: 16'))).toThrow(/blockSzie: unknown field/)
    expect(() => loadSimConfigFile(file('d.yaml', 'outputLength: { type: uniform, min: 5 }'))).toThrow(
      /outputLength\.max: is required/,
    )
    expect(() => loadSimConfigFile(file('e.yaml', 'outputLength: { type: zipf }'))).toThrow(
      /outputLength\.type: must be one of/,
    )
    expect(() => loadSimConfigFile(file('f.yaml', 'faults: { streamCutRate: 3 }'))).toThrow(
      /faults\.streamCutRate: must be <= 1/,
    )
    expect(() => loadSimConfigFile(file('g.yaml', 'metricsCompat: v2'))).toThrow(
      /metricsCompat: must be one of "v1", "v0"/,
    )
    expect(() => loadSimConfigFile(join(dir, 'missing.yaml'))).toThrow(/cannot read the file/)
    expect(() => loadSimConfigFile(file('h.yaml', 'a: [1, 2'))).toThrow(/not valid YAML/)
    expect(() => validateSimOptions({ outputLength: { type: 'uniform', min: 9, max: 3 } })).toThrow(/outputLength\.min/)
  })

  it('lays flags over the file', () => {
    const path = file('base.yaml', 'numGpuBlocks: 512\nmodel: from-file\nfaults: { errorRate: 0.5 }\n')
    const options = simOptionsFromFlags({ config: path, model: 'from-flag', faultStreamCutRate: 0.2, logLevel: 'info' })
    expect(options).toMatchObject({
      port: 8000,
      numGpuBlocks: 512,
      model: 'from-flag',
      faults: { errorRate: 0.5, streamCutRate: 0.2 },
    })
  })

  it('startSim refuses invalid options before listening', async () => {
    await expect(startSim({ numGpuBlocks: 1 })).rejects.toThrow(/numGpuBlocks: must be >= 2/)
    await expect(startSim({ speed: 0 })).rejects.toThrow(/speed: must be > 0/)
  })
})
