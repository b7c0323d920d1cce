import type { FastifyInstance } from 'fastify'
import { errors } from '../errors/index.js'
import type { AdminContext } from './admin-server.js'

/**
 * `POST /admin/backends/:name/drain` and `POST /admin/backends/:name/resume` on the admin listener: the
 * operator's switch for a backend about to be restarted or upgraded (`Gateway.setDraining`). Draining stops
 * new admissions to it; what runs there finishes; `/health` stays ready while another backend takes
 * requests. Until the next reload that changes the backend's `drain` in the file. 404 for an unknown name.
 */
export function registerDrainRoutes(admin: FastifyInstance, context: AdminContext): void {
  const route = (action: 'drain' | 'resume') =>
    admin.post<{ Params: { name: string } }>(`/admin/backends/:name/${action}`, async (request, reply) => {
      const { name } = request.params
      if (!context.setDraining(name, action === 'drain')) {
        const error = errors.notFound([`No backend named ${JSON.stringify(name.slice(0, 100))}`])
        return reply.code(error.statusCode).send(error.toBody())
      }
      const state = context.fleet.states().find((s) => s.id === name)
      return { backend: name, draining: state?.draining ?? action === 'drain' }
    })
  route('drain')
  route('resume')
}
