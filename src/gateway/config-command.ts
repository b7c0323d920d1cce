import { Command } from 'commander'
import { stringify } from 'yaml'
import { configSchema, ENV_OVERRIDES, loadConfig } from '../config/index.js'
import { redactSecrets, secretValues } from '../core/index.js'
import { KvgateError } from '../errors/index.js'
import { addConfigFlags, type ConfigFlags, configPathOf, flagOverrides } from './config-flags.js'
import { securityWarnings } from './startup-warnings.js'

/**
 * `kvgate config check`, like `nginx -t`: read the file with the environment and the flags laid over it, as
 * `kvgate serve` would, and say whether it is valid. Valid: the effective config on stdout as YAML (every
 * secret `[redacted]`), the start-up warnings on stderr, exit 0. Invalid: each problem behind the flag,
 * variable or file that set it, on stderr, exit 1. Nothing listens and no backend is contacted.
 */
export function createConfigCommand(): Command {
  const check = addConfigFlags(
    new Command('check').description(
      'Validate the config as kvgate serve would read it (file, KVGATE_* variables, flags) and print it, secrets redacted',
    ),
  ).action((flags: ConfigFlags, command: Command) => {
    const path = configPathOf(flags, command)
    let text: string
    let warnings: string[]
    try {
      const config = loadConfig(path, flagOverrides(flags))
      // Masked inside the JSON text, so `[redacted]` stays a YAML string; then the YAML text once more, in case
      // a key held a character JSON escapes.
      const secrets = secretValues(configSchema, config)
      text = redactSecrets(stringify(JSON.parse(redactSecrets(JSON.stringify(config), secrets))), secrets)
      warnings = securityWarnings(config)
    } catch (err) {
      process.stderr.write(`kvgate config check: ${err instanceof KvgateError ? err.message : String(err)}\n`)
      process.exitCode = 1
      return
    }
    const variables = Object.keys(ENV_OVERRIDES).filter((name) => process.env[name])
    const sources = [path ?? 'built-in defaults', ...variables, ...(hasFlags(command) ? ['flags'] : [])]
    process.stdout.write(`# kvgate config check: OK (${sources.join(' + ')})\n${text}`)
    for (const warning of warnings) process.stderr.write(`kvgate config check: warning: ${warning}\n`)
  })
  return new Command('config').description('Work with kvgate configuration files').addCommand(check)
}

/** Whether any flag other than --config was given. */
function hasFlags(command: Command): boolean {
  return command.options.some((option) => {
    const name = option.attributeName()
    return name !== 'config' && command.getOptionValueSource(name) === 'cli'
  })
}
