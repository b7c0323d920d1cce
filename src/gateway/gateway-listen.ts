import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { KvgateConfig } from '../config/index.js'

export interface ListenOptions {
  port?: number
  host?: string
  /** The admin listener's port; by default `admin.port`, or an ephemeral one when the public port is 0. */
  adminPort?: number
  adminHost?: string
}

/** A URL a client on this machine can use for a listener bound to `host` (a wildcard bind means loopback). */
const reachable = (host: string): string => {
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
  return h.includes(':') ? `[${h}]` : h
}

const portOf = (server: FastifyInstance, fallback: number): number => {
  const address = server.server.address()
  return typeof address === 'object' && address !== null ? address.port : fallback
}

/**
 * `Gateway.listen()`: the public listener, then the admin one (if that fails, the public one is closed
 * again). Resolves to both URLs; defaults come from `server` and `admin`.
 */
export async function listenBoth(
  app: FastifyInstance,
  admin: FastifyInstance,
  config: KvgateConfig,
  opts: ListenOptions,
  logger: Logger,
): Promise<{ readonly url: string; readonly admin: string }> {
  const port = opts.port ?? config.server.port
  const host = opts.host ?? config.server.host
  const adminHost = opts.adminHost ?? config.admin.host
  // An ephemeral public port (tests, several gateways in one process) takes an ephemeral admin port too.
  const adminPort = opts.adminPort ?? (port === 0 ? 0 : config.admin.port)
  const url = await app.listen({ port, host })
  try {
    await admin.listen({ port: adminPort, host: adminHost })
  } catch (err) {
    await app.close()
    throw err
  }
  const adminAddress = `http://${reachable(adminHost)}:${portOf(admin, adminPort)}`
  logger.info({ url, port: portOf(app, port), admin: adminAddress }, 'kvgate listening')
  return { url: `http://${reachable(host)}:${portOf(app, port)}`, admin: adminAddress }
}
