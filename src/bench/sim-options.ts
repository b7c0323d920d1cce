import type { Command } from 'commander'
import type { SimOptions } from '../sim/index.js'
import {
  addSimOptions as addEmulatorOptions,
  collectSimOptions,
  loadSimConfigFile,
  SIM_OPTION_DEFINITIONS,
  simOptionAttribute,
  validateSimOptions,
} from '../sim/index.js'

/**
 * `kvgate bench compare` starts a fresh emulator per setup and takes every option `kvgate sim` has, without the
 * bench knowing them one by one: the flags come from the emulator's own option list (`SIM_OPTION_DEFINITIONS`,
 * the data `kvgate sim` itself is built from), so an option added to `kvgate sim` appears in `compare` with no
 * edit here, parsed and routed (`faults.*`, `latency.*`, top level) exactly as `kvgate sim` routes it.
 * `--sim-config FILE` reads a `kvgate sim --config` file (latency, outputLength, …); flags win over it.
 */

/**
 * Emulator options compare does not take: it picks the address itself, shares `--seed` and `--speed` with the
 * replay, and its `--model` is the model the clients request (the emulator serves it).
 */
const NOT_COPIED = ['port', 'host', 'speed', 'seed', 'model'] as const

/** Add the emulator's flags to `command`; returns the option attributes added (for `simOptionsFromCommand`). */
export function addSimOptions(command: Command): string[] {
  addEmulatorOptions(command, { omit: NOT_COPIED })
  command.option(
    '--sim-config <file>',
    'emulator options file, as kvgate sim --config (latency, outputLength, faults, …)',
  )
  return SIM_OPTION_DEFINITIONS.filter((d) => !(NOT_COPIED as readonly string[]).includes(d.key)).map((d) =>
    simOptionAttribute(d),
  )
}

/** The emulator options given on the command line (only those given: a `--no-…` flag's default is not one). */
export function simOptionsFromCommand(command: Command, keys: readonly string[]): SimOptions {
  const configFile = command.getOptionValue('simConfig') as string | undefined
  const file: SimOptions = configFile !== undefined ? loadSimConfigFile(configFile) : {}
  const given: Record<string, unknown> = {}
  for (const key of keys) if (command.getOptionValueSource(key) === 'cli') given[key] = command.getOptionValue(key)
  const flags = collectSimOptions(given, { omit: NOT_COPIED })
  const merged: Record<string, unknown> = { ...file, ...flags }
  for (const group of ['faults', 'latency'] as const) {
    if (file[group] !== undefined || flags[group] !== undefined) merged[group] = { ...file[group], ...flags[group] }
  }
  return validateSimOptions(merged, 'kvgate bench compare (emulator options)')
}

/** Whether any emulator option was given (they mean nothing with an external backend). */
export function simOptionsGiven(command: Command, keys: readonly string[]): boolean {
  return (
    command.getOptionValue('simConfig') !== undefined || keys.some((k) => command.getOptionValueSource(k) === 'cli')
  )
}
