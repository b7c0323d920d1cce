import { type Command, Option } from 'commander'
import type { SimOptions } from '../sim/index.js'
import {
  createSimCommand,
  DEFAULT_FAULTS,
  DEFAULT_LATENCY,
  loadSimConfigFile,
  SIM_DEFAULTS,
  validateSimOptions,
} from '../sim/index.js'

/**
 * `kvgate bench compare` starts a fresh emulator per setup and takes every option `kvgate sim` has, without the
 * bench knowing them one by one: the flags are copied from the emulator's own command (`createSimCommand()`'s
 * option definitions: name, help, parser, choices), so an option added to `kvgate sim` appears in `compare`
 * with no edit here. A value goes where `kvgate sim` puts it: a `--fault-*` flag (or another `FaultConfig`
 * field) into `faults`, a `LatencyModel` field into `latency`, anything else to the top level of the options,
 * which `validateSimOptions` checks, so a flag this routing does not understand is refused by name rather than
 * ignored. `--sim-config FILE` reads a `kvgate sim --config` file (latency, outputLength, …); flags win over it.
 */

/**
 * Emulator flags compare does not copy: it picks the address itself, shares `--seed` and `--speed` with the
 * replay, reads `--sim-config` instead of `--config`, and its `--model` is the model the clients request.
 */
const NOT_COPIED = new Set(['port', 'host', 'config', 'logLevel', 'speed', 'seed', 'model'])

const lowerFirst = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1)

/** Add the emulator's flags to `command`; returns the option keys added (for `simOptionsFromCommand`). */
export function addSimOptions(command: Command): string[] {
  const keys: string[] = []
  for (const option of createSimCommand().options) {
    const key = option.attributeName()
    if (NOT_COPIED.has(key)) continue
    if (command.options.some((o) => o.attributeName() === key || (o.long !== undefined && o.long === option.long))) {
      continue
    }
    const copy = new Option(option.flags, `emulator: ${option.description}`)
    if (option.parseArg !== undefined) copy.argParser(option.parseArg)
    if (option.argChoices !== undefined) copy.choices(option.argChoices)
    command.addOption(copy)
    keys.push(key)
  }
  command.option(
    '--sim-config <file>',
    'emulator options file, as kvgate sim --config (latency, outputLength, faults, …)',
  )
  return keys
}

/** The emulator options given on the command line (only those given: a `--no-…` flag's default is not one). */
export function simOptionsFromCommand(command: Command, keys: readonly string[]): SimOptions {
  const configFile = command.getOptionValue('simConfig') as string | undefined
  const file: SimOptions = configFile !== undefined ? loadSimConfigFile(configFile) : {}
  const top: Record<string, unknown> = { ...file }
  const faults: Record<string, unknown> = { ...file.faults }
  const latency: Record<string, unknown> = { ...file.latency }
  for (const key of keys) {
    if (command.getOptionValueSource(key) !== 'cli') continue
    const value = command.getOptionValue(key) as unknown
    const fault = key.startsWith('fault') ? lowerFirst(key.slice('fault'.length)) : key
    if (fault in DEFAULT_FAULTS) faults[fault] = value
    else if (key in DEFAULT_LATENCY && !(key in SIM_DEFAULTS)) latency[key] = value
    else top[key] = value
  }
  if (Object.keys(faults).length > 0) top['faults'] = faults
  if (Object.keys(latency).length > 0) top['latency'] = latency
  return validateSimOptions(top, 'kvgate bench compare (emulator options)')
}

/** Whether any emulator option was given (they mean nothing with an external backend). */
export function simOptionsGiven(command: Command, keys: readonly string[]): boolean {
  return (
    command.getOptionValue('simConfig') !== undefined || keys.some((k) => command.getOptionValueSource(k) === 'cli')
  )
}
