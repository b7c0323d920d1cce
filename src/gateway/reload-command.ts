import { Command } from 'commander'
import { request } from 'undici'
import { loadConfig } from '../config/index.js'
import { KvgateError } from '../errors/index.js'
import { addConfigFlags, type ConfigFlags, configPathOf, flagOverrides } from './config-flags.js'
import { RELOAD_PATH } from './reload-route.js'

interface ReloadFlags extends ConfigFlags {
  adminUrl?: string
}

const RELOAD_TIMEOUT_MS = 10_000 // 10 seconds: a reload reads one file; longer means nobody is answering

/**
 * `kvgate reload`: ask the running gateway to re-read its config file, through its admin listener
 * (`POST /admin/reload`, with `admin.token` when one is set) rather than a signal, so it works wherever the
 * admin port is reachable, whichever process ID kvgate has. The admin address and token come from the same
 * file, variables and flags as `kvgate serve` (`--admin-url` or `KVGATE_ADMIN_URL` to name it outright;
 * `KVGATE_ADMIN_TOKEN` for a token kept out of the file). Exit 0 when the new config is in force, 1 when it
 * was refused (the old one stays) or the gateway could not be reached.
 */
export function createReloadCommand(): Command {
  return addConfigFlags(new Command('reload').description('Make the running gateway re-read its config file'))
    .option('--admin-url <url>', 'the gateway admin listener (default: from admin.host and admin.port)')
    .action(async (flags: ReloadFlags, command: Command) => {
      const fail = (message: string): void => {
        process.stderr.write(`kvgate reload: ${message}\n`)
        process.exitCode = 1
      }
      let url = flags.adminUrl ?? process.env['KVGATE_ADMIN_URL']
      let token = process.env['KVGATE_ADMIN_TOKEN'] || null
      try {
        const config = loadConfig(configPathOf(flags, command), flagOverrides(flags))
        const host = config.admin.host === '0.0.0.0' || config.admin.host === '::' ? '127.0.0.1' : config.admin.host
        url ??= `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`
        token ??= config.admin.token
      } catch (err) {
        // Without a readable config the admin URL must be given; the gateway validates the file anyway.
        if (url === undefined) return fail(err instanceof KvgateError ? err.message : String(err))
      }
      try {
        const response = await request(`${url.replace(/\/+$/, '')}${RELOAD_PATH}`, {
          method: 'POST',
          headers: token === null ? {} : { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(RELOAD_TIMEOUT_MS),
        })
        const body = (await response.body.json().catch(() => ({}))) as Record<string, unknown>
        if (response.statusCode !== 200) {
          const error = body['error'] as { message?: string } | undefined
          return fail(`${response.statusCode}: ${error?.message ?? 'the gateway refused the reload'}`)
        }
        const restart = (body['needsRestart'] as string[] | undefined) ?? []
        process.stdout.write(
          `kvgate reload: reloaded (policy ${String(body['policy'])})${restart.length > 0 ? `; restart needed for ${restart.join(', ')}` : ''}\n`,
        )
      } catch (err) {
        fail(`cannot reach the admin listener at ${url}: ${(err as Error).message}`)
      }
    })
}
