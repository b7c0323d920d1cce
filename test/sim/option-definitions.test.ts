import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { describe, expect, it } from 'vitest'
import {
  addSimOptions,
  checkSimOptionCombinations,
  collectSimOptions,
  createSimCommand,
  DEFAULT_FAULTS,
  SIM_OPTION_DEFINITIONS,
  type SimOptions,
  validateSimOptions,
} from '../../src/sim/index.js'
import { simOptionsFromFlags } from '../../src/sim/command.js'

/**
 * The emulator's options as data: `kvgate sim` is built from `SIM_OPTION_DEFINITIONS`, and another command
 * (the bench) can register the same options, under a prefix, and hand what it parsed to `startSim`.
 */
const SAMPLE: Readonly<Record<string, string[]>> = {
  servedModelName: ['a', 'b'],
  models: ['a,b'],
  loraModules: ['sql=/x', '{"name":"legal","path":"/y","base_model_name":"a"}'],
  numGpuBlocksOverride: ['300'],
  outputLength: ['{"type":"constant","value":5}'],
  kvOffloadingSize: ['2'],
  kvOffloadingBackend: ['native'],
  numCpuBlocks: ['64'],
  kvTransferConfig: [
    '{"kv_connector":"OffloadingConnector","kv_role":"kv_both","kv_connector_extra_config":{"num_cpu_blocks":64}}',
  ],
  kvOffloadingLoadMsPerBlock: ['0.5'],
  'faults.metricsOverrides': ['vllm:kv_cache_usage_perc=NaN', 'vllm:num_requests_running=-3'],
  'faults.cacheConfigLabels': ['num_gpu_blocks=1e15'],
  'faults.dieAfterMs': ['1000'],
}

/** argv that sets `definition` to its sample (or its default). */
function argvFor(definition: (typeof SIM_OPTION_DEFINITIONS)[number], prefix = ''): string[] {
  const flag = `--${prefix}${definition.flag.slice(2)}`
  if (definition.valueName === null) return [flag]
  const values = SAMPLE[definition.key] ?? [String(definition.default)]
  if (definition.type === 'variadic' || definition.type === 'lora-modules') return [flag, ...values]
  return values.flatMap((value) => [flag, value])
}

function parse(argv: string[], prefix = '', omit: string[] = []): Record<string, unknown> {
  const command = addSimOptions(new Command('host').exitOverride(), { prefix, omit })
  command.parse(argv, { from: 'user' })
  return command.opts()
}

describe('SIM_OPTION_DEFINITIONS', () => {
  it('lists flags once each, with a type, a help and (where it has one) a default', () => {
    const flags = SIM_OPTION_DEFINITIONS.map((d) => d.flag)
    expect(new Set(flags).size).toBe(flags.length)
    expect(new Set(SIM_OPTION_DEFINITIONS.map((d) => d.key)).size).toBe(flags.length)
    for (const d of SIM_OPTION_DEFINITIONS) expect(d.help.length, d.flag).toBeGreaterThan(10)
    const help = createSimCommand().helpInformation()
    for (const flag of flags) expect(help).toContain(flag)
    expect(help).toContain('--no-enable-prefix-caching')
  })

  it('docs/sim.md documents every flag and every fault', () => {
    const doc = readFileSync(new URL('../../docs/sim.md', import.meta.url), 'utf8')
    for (const d of SIM_OPTION_DEFINITIONS) expect(doc, d.flag).toContain(`\`${d.flag}`)
    for (const fault of Object.keys(DEFAULT_FAULTS)) expect(doc, fault).toContain(`\`${fault}\``)
  })

  it("covers vLLM's flag names", () => {
    const vllm = SIM_OPTION_DEFINITIONS.filter((d) => d.vllm).map((d) => d.flag)
    expect(vllm).toEqual(
      expect.arrayContaining([
        '--served-model-name',
        '--num-gpu-blocks-override',
        '--max-model-len',
        '--max-num-batched-tokens',
        '--gpu-memory-utilization',
        '--enable-prefix-caching',
        '--block-size',
        '--max-num-seqs',
        '--seed',
        '--port',
        '--host',
        '--kv-offloading-size',
        '--lora-modules',
      ]),
    )
  })

  it('every option, given its sample or default, lands on a field startSim accepts', () => {
    for (const definition of SIM_OPTION_DEFINITIONS) {
      const options = collectSimOptions(parse(argvFor(definition)))
      const [group, field] = definition.key.split('.') as [keyof SimOptions, string | undefined]
      const value = field === undefined ? options[group] : (options[group] as Record<string, unknown>)[field]
      expect(value, definition.flag).toBeDefined()
      expect(() => validateSimOptions(options, definition.flag), definition.flag).not.toThrow()
    }
  })

  it('passes everything through under a prefix, leaving out what the host command has', () => {
    const argv = [
      ...['--sim-max-model-len', '32768', '--sim-kv-offloading-size', '4', '--no-sim-enable-prefix-caching'],
      ...['--sim-served-model-name', 'x', 'y', '--sim-fault-metric-override', 'vllm:kv_cache_usage_perc=-Inf'],
      ...['--sim-latency-prefill-token-ms', '0.05', '--sim-fault-error-rate', '0.1'],
    ]
    const values = parse(argv, 'sim-', ['seed', 'speed'])
    const options = collectSimOptions(values, { prefix: 'sim-', omit: ['seed', 'speed'] })
    expect(options).toEqual({
      maxModelLen: 32768,
      kvOffloadingSize: 4,
      enablePrefixCaching: false,
      servedModelName: ['x', 'y'],
      latency: { prefillTokenMs: 0.05 },
      faults: { metricsOverrides: { 'vllm:kv_cache_usage_perc': '-Inf' }, errorRate: 0.1 },
    })
    expect(checkSimOptionCombinations(validateSimOptions(options))).toBe(options)
    expect(() => parse(['--sim-seed', '3'], 'sim-', ['seed'])).toThrow(/unknown option/)
  })

  it('parses each kind of value, and refuses a bad one naming the flag', () => {
    const values = parse([...argvFor(SIM_OPTION_DEFINITIONS.find((d) => d.key === 'loraModules')!), '--models', 'a, b'])
    expect(collectSimOptions(values)).toEqual({
      loraModules: [
        { name: 'sql', path: '/x' },
        { name: 'legal', path: '/y', baseModelName: 'a' },
      ],
      models: ['a', 'b'],
    })
    expect(() => parse(['--num-gpu-blocks', '1.5'])).toThrow(/--num-gpu-blocks: must be an integer/)
    expect(() => parse(['--fault-metric-override', 'vllm:x=lots'])).toThrow(/not a number, NaN, \+Inf or -Inf/)
    expect(() => parse(['--lora-modules', 'nopath'])).toThrow(/expected name=path/)
    expect(() => parse(['--output-length', '{bad'])).toThrow(/not valid JSON/)
    expect(() => parse(['--kv-offloading-backend', 'lmcache'])).toThrow(/Allowed choices are native/)
  })

  it('kvgate sim lays flags over the file and checks combinations', () => {
    expect(() => simOptionsFromFlags({ kvOffloadingSize: 1, numCpuBlocks: 5 })).toThrow(/give one/)
    expect(() => simOptionsFromFlags({ kvTransferConfig: { kv_connector: 'OffloadingConnector' } })).toThrow(
      /needs kv_connector_extra_config.num_cpu_blocks or cpu_bytes_to_use/,
    )
    expect(() => simOptionsFromFlags({ kvTransferConfig: { kv_connector: 'LMCacheConnectorV1' } })).toThrow(
      /kvTransferConfig\.kv_connector: must be one of "OffloadingConnector"/,
    )
    expect(() => simOptionsFromFlags({ kvOffloadingBackend: 'native' })).toThrow(/must be used together/)
    expect(() => simOptionsFromFlags({ kvOffloadingSize: 0.000001 })).toThrow(/holds no block/)
    expect(simOptionsFromFlags({ latencyStepFixedMs: 3 })).toMatchObject({ port: 8000, latency: { stepFixedMs: 3 } })
  })
})
