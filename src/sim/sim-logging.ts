import { type FastifyReply, type FastifyRequest, LogController } from 'fastify'

/**
 * The emulator's request logging: quiet by default. One line per request at `debug` (method, path, status,
 * time), none at all for `/metrics` and `/health`, which a gateway polls many times a second; errors stay
 * visible at `error` (the server's error handler logs those that are not injected faults). Start-up lines
 * are the CLI's, at `info`.
 */
const POLLED = new Set(['/metrics', '/health'])

const pathOf = (url: string): string => {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

class SimLogController extends LogController {
  override isLogDisabled(request: FastifyRequest): boolean {
    return POLLED.has(pathOf(request.url))
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const line = {
      method: request.method,
      url: request.url,
      statusCode: reply.raw.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
    }
    if (error) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.debug(line, 'request')
  }

  override routeNotFound(request: FastifyRequest): void {
    if (!this.isLogDisabled(request)) request.log.debug({ method: request.method, url: request.url }, 'no such route')
  }
}

export function createSimLogController(): LogController {
  return new SimLogController()
}
