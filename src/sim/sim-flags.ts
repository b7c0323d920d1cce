import { type Command, InvalidArgumentError, Option } from 'commander'
import { KvgateError } from '../errors/index.js'
import { parseLoraModule } from './models.js'
import { SIM_OPTION_DEFINITIONS, type SimOptionDefinition } from './option-definitions.js'
import type { LoraModule, MetricOverrideValue, SimOptions } from './options.js'

/**
 * `SIM_OPTION_DEFINITIONS` turned into commander options and back: `kvgate sim` registers them all; another
 * command that starts the emulator in-process (`kvgate bench compare`) can register them too, under a
 * prefix if its own flags would clash (`--sim-max-model-len`), and hand what was given to `startSim`.
 */
export interface SimFlagsOptions {
  /** Prepended to every flag's name: `sim-` makes `--num-gpu-blocks` into `--sim-num-gpu-blocks`. */
  prefix?: string
  /** Keys (`SimOptionDefinition.key`) not to register, e.g. those the host command already has. */
  omit?: readonly string[]
}

const flagOf = (definition: SimOptionDefinition, prefix: string): string => `--${prefix}${definition.flag.slice(2)}`

function fail(flag: string, message: string): never {
  throw new InvalidArgumentError(`${flag}: ${message}`)
}

function pair(flag: string, text: string): [string, string] {
  const eq = text.indexOf('=')
  if (eq <= 0) fail(flag, `expected name=value, got "${text}"`)
  return [text.slice(0, eq), text.slice(eq + 1)]
}

const INFINITIES: Readonly<Record<string, MetricOverrideValue>> = {
  NaN: 'NaN',
  nan: 'NaN',
  Inf: '+Inf',
  '+Inf': '+Inf',
  inf: '+Inf',
  '+inf': '+Inf',
  '-Inf': '-Inf',
  '-inf': '-Inf',
}

/** commander's parser for one definition: `(value, previous) => parsed`. */
function parserFor(
  definition: SimOptionDefinition,
  flag: string,
): ((value: string, previous: unknown) => unknown) | null {
  switch (definition.type) {
    case 'integer':
      return (value) => {
        const n = Number(value)
        return value.trim() !== '' && Number.isInteger(n) ? n : fail(flag, `must be an integer, got "${value}"`)
      }
    case 'number':
      return (value) => {
        const n = Number(value)
        return value.trim() !== '' && Number.isFinite(n) ? n : fail(flag, `must be a number, got "${value}"`)
      }
    case 'list':
      return (value) =>
        value
          .split(',')
          .map((part) => part.trim())
          .filter((part) => part !== '')
    case 'lora-modules':
      return (value, previous) => {
        try {
          return [...((previous as LoraModule[] | undefined) ?? []), parseLoraModule(value)]
        } catch (err) {
          if (err instanceof KvgateError) fail(flag, err.message)
          throw err
        }
      }
    case 'labels':
      return (value, previous) => {
        const [key, text] = pair(flag, value)
        return { ...(previous as Record<string, string> | undefined), [key]: text }
      }
    case 'metric-values':
      return (value, previous) => {
        const [key, text] = pair(flag, value)
        const n = Number(text)
        const parsed =
          INFINITIES[text] ??
          (text.trim() !== '' && Number.isFinite(n) ? n : fail(flag, `${key}: not a number, NaN, +Inf or -Inf`))
        return { ...(previous as Record<string, MetricOverrideValue> | undefined), [key]: parsed }
      }
    case 'json':
      return (value) => {
        try {
          return JSON.parse(value) as unknown
        } catch {
          return fail(flag, `not valid JSON: ${value}`)
        }
      }
    default:
      // strings, choices, switches and variadic lists: commander's own handling.
      return null
  }
}

function describeDefault(definition: SimOptionDefinition): string {
  if (definition.default === null || definition.type === 'boolean') return ''
  return ` (default ${definition.default})`
}

function optionsFor(definition: SimOptionDefinition, prefix: string): Option[] {
  const flag = flagOf(definition, prefix)
  const spec = definition.valueName === null ? flag : `${flag} ${definition.valueName}`
  const option = new Option(spec, `${definition.help}${describeDefault(definition)}`)
  if (definition.choices !== undefined) option.choices(definition.choices)
  const parse = parserFor(definition, flag)
  if (parse !== null) option.argParser(parse)
  if (definition.negatable !== true) return [option]
  // Both spellings defined: commander then sets no default, so an absent flag leaves the file's value.
  // Under a prefix the negation reads `--no-sim-enable-prefix-caching` (commander negates `--no-` only).
  return [option, new Option(`--no-${prefix}${definition.flag.slice(2)}`, `turn ${flag} off`)]
}

/** Register the emulator's options on `command`. */
export function addSimOptions(command: Command, options: SimFlagsOptions = {}): Command {
  const prefix = options.prefix ?? ''
  for (const definition of SIM_OPTION_DEFINITIONS) {
    if (options.omit?.includes(definition.key)) continue
    for (const option of optionsFor(definition, prefix)) command.addOption(option)
  }
  return command
}

/** The commander attribute a definition's value lands in (`--sim-max-model-len` → `simMaxModelLen`). */
export function simOptionAttribute(definition: SimOptionDefinition, prefix = ''): string {
  return new Option(flagOf(definition, prefix)).attributeName()
}

/**
 * The `SimOptions` given as flags, from commander's parsed values (`command.opts()`): only what was set, so
 * a config file or `startSim`'s defaults fill the rest. Not validated here: `startSim` validates.
 */
export function collectSimOptions(
  values: Readonly<Record<string, unknown>>,
  options: SimFlagsOptions = {},
): SimOptions {
  const prefix = options.prefix ?? ''
  const out: Record<string, unknown> = {}
  for (const definition of SIM_OPTION_DEFINITIONS) {
    if (options.omit?.includes(definition.key)) continue
    const value = values[simOptionAttribute(definition, prefix)]
    if (value === undefined) continue
    const [group, field] = definition.key.split('.') as [string, string | undefined]
    if (field === undefined) out[group] = value
    else out[group] = { ...(out[group] as Record<string, unknown> | undefined), [field]: value }
  }
  return out as SimOptions
}
