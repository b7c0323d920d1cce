import type { KvgateConfig } from '../config/index.js'
import { errors } from '../errors/index.js'
import type { AdminRoutes } from './admin-server.js'

/** What one reload did: the new config in force, or why the old one stays. */
export type ReloadResult =
  | { readonly reloaded: true; readonly config: KvgateConfig; readonly needsRestart?: readonly string[] }
  | { readonly reloaded: false; readonly error: string }

export const RELOAD_PATH = '/admin/reload'

/**
 * `POST /admin/reload` on the admin listener (behind `admin.token` when one is set): re-read the config file
 * now, as SIGHUP does, and say what happened. The route for an operator or a tool that cannot send a signal
 * to kvgate's process (a container runtime, `kubectl exec` without a shell); `kvgate reload` calls it.
 * 200 with the policy in force and the sections that need a restart; 422 `reload_refused` when the file is
 * invalid (the old config stays).
 */
export function reloadRoute(reload: () => ReloadResult): AdminRoutes {
  return (admin) => {
    admin.post(RELOAD_PATH, async (_request, reply) => {
      const result = reload()
      if (!result.reloaded) {
        const error = errors.reloadRefused([result.error])
        return reply.code(error.statusCode).send(error.toBody())
      }
      return {
        reloaded: true,
        policy: result.config.policy.name,
        users: result.config.users.length,
        needsRestart: result.needsRestart ?? [],
      }
    })
  }
}
