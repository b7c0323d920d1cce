import {
  type AdmissionTicket,
  type CapacityLimits,
  type CapacitySnapshot,
  type CapacityView,
  backendRoom,
  FINAL_SIZE_RULES,
  type Placement,
  type RoomRules,
} from '../admission/index.js'
import type { Ledger } from '../ledger/index.js'
import type { RouteCandidate, RouteChoice, RouteRequest, Router } from './router.js'

/** vLLM's default block size, until a backend's `cache_config_info` says otherwise. */
export const DEFAULT_BLOCK_SIZE = 16

/** A backend as the fleet view needs it: capacity and usage, pool memberships, and whether it takes work. */
export interface FleetBackend {
  readonly id: string
  readonly capacityTokens: number
  readonly usedTokens: number
  /** Polled recently and its models known. */
  readonly usable: boolean
  /** Takes no new admissions; its running requests finish. */
  readonly draining: boolean
  /** The models it serves (a set, or the directory's map by id); undefined while unknown: then in no pool. */
  readonly models: { has(model: string): boolean } | undefined
  readonly waiting: number
  readonly running: number
  readonly blockSize: number | undefined
}

export interface FleetViewOptions {
  backends: () => readonly FleetBackend[]
  ledger: Ledger
  /** Read at every snapshot, so a reload of the headroom applies to the next decision. */
  headroomRatio: () => number
  /** How reservations count against the room (src/admission/room-rules.ts); the final-size rule by default. */
  rules?: () => RoomRules
  /**
   * The room on a backend before the rules' extra; by default `(capacity − used) − headroom − outstanding +
   * freed` of the local ledger. A ledger shared between replicas (src/state) counts every replica's
   * reservations against the shared poll here.
   */
  room?: (backend: FleetBackend, headroomTokens: number) => number
  /** The router in force now (a reload may swap it). */
  router: () => Router
  clock: { now(): number }
  /** A routing decision was made and the request admitted there (metrics). */
  onRouted?: (ticket: AdmissionTicket, choice: RouteChoice) => void
}

interface Row {
  readonly backend: FleetBackend
  readonly candidate: RouteCandidate
  readonly usableTokens: number
  /** Usable and not draining: may take a new request. */
  readonly open: boolean
  /** The overcommit rule lets one more request go beyond the room here, to wait in vLLM's own queue. */
  readonly spill: boolean
}

/** The open backend with the most room among those the overcommit rule lets take one more beyond it. */
function spillPlacement(rows: readonly Row[], needTokens: number): Placement | undefined {
  let best: Row | undefined
  for (const row of rows) {
    if (!row.spill || needTokens > row.usableTokens) continue
    if (best === undefined || row.candidate.roomTokens > best.candidate.roomTokens) best = row
  }
  return best === undefined ? undefined : { backendId: best.candidate.backendId, roomTokens: best.candidate.roomTokens }
}

/**
 * The capacity view of a fleet: per backend `room = (capacity − used) − headroom − outstanding + freed +
 * extra`, as the default view computes it (`backendRoom`, src/admission/capacity-view.ts), but a request only
 * sees its model's pool (backends serving `ticket.model`, usable, not draining) and the router picks among
 * them. What the dispatcher and the wait prediction read across the
 * fleet (`maxRoomTokens`, `totalRoomTokens`, `usableTokens()`) counts the open backends of every pool; the
 * per-request limits (`limitsFor`) count the request's pool only, so a model whose replicas are small never
 * waits on another model's large one.
 */
export function createFleetView(options: FleetViewOptions): CapacityView {
  const { ledger } = options
  /** Admitted requests the router chose for, until they end. */
  const routed = new Set<string>()
  /**
   * The last placement made: the dispatcher admits right after `place()` returns one, or drops it (its policy
   * refused), so one slot is enough and nothing accumulates for requests that were never admitted.
   */
  let last: { ticketId: string; choice: RouteChoice } | undefined

  const routeRequest = (needTokens: number, ticket: AdmissionTicket, nowMs: number): RouteRequest => ({
    id: ticket.id,
    model: ticket.model,
    promptTokens: ticket.promptTokens,
    needTokens,
    hints: ticket.routing,
    waitedMs: ticket.routing === undefined ? 0 : Math.max(0, nowMs - ticket.routing.arrivedAtMs),
  })

  return {
    snapshot(): CapacitySnapshot | undefined {
      const headroomRatio = options.headroomRatio()
      const rules = options.rules?.() ?? FINAL_SIZE_RULES
      const rows: Row[] = []
      let maxRoomTokens = Number.NEGATIVE_INFINITY
      let maxUsableTokens = 0
      let maxKnownTokens = 0
      let totalRoomTokens = 0
      let anyOpen = false
      for (const backend of options.backends()) {
        if (!(backend.capacityTokens > 0)) continue
        const headroom = headroomRatio * backend.capacityTokens
        const usableTokens = backend.capacityTokens - headroom
        maxKnownTokens = Math.max(maxKnownTokens, usableTokens)
        const open = backend.usable && !backend.draining && backend.models !== undefined
        const { room, spill } = backendRoom(backend, headroom, ledger, rules, options.room)
        if (open) {
          anyOpen = true
          maxUsableTokens = Math.max(maxUsableTokens, usableTokens)
          // Beyond the room only what could run alone on a spill backend: it waits in vLLM's queue meanwhile.
          maxRoomTokens = Math.max(maxRoomTokens, room, spill ? usableTokens : Number.NEGATIVE_INFINITY)
          totalRoomTokens += Math.max(0, room)
        }
        rows.push({
          backend,
          open,
          usableTokens,
          spill,
          candidate: {
            backendId: backend.id,
            capacityTokens: backend.capacityTokens,
            roomTokens: room,
            waiting: backend.waiting,
            running: backend.running,
            blockSize: backend.blockSize ?? DEFAULT_BLOCK_SIZE,
          },
        })
      }
      if (!anyOpen) return undefined
      // Pools by model, built on first use within this snapshot: most decisions ask about one or two models.
      const pools = new Map<string, Row[]>()
      const poolOf = (model: string): Row[] => {
        let pool = pools.get(model)
        if (pool === undefined) {
          pool = rows.filter((r) => r.backend.models?.has(model) === true)
          pools.set(model, pool)
        }
        return pool
      }
      const router = options.router()
      return {
        maxRoomTokens,
        maxUsableTokens,
        maxKnownTokens,
        totalRoomTokens,
        place(needTokens, ticket): Placement | undefined {
          const open = poolOf(ticket.model).filter((r) => r.open)
          const candidates = open.map((r) => r.candidate)
          if (candidates.length === 0) return undefined
          const nowMs = options.clock.now()
          const request = routeRequest(needTokens, ticket, nowMs)
          const choice = router.choose(request, candidates, nowMs)
          const candidate = candidates.find((c) => c.backendId === choice?.backendId)
          // A router may only choose a candidate that takes the request; anything else waits, or spills.
          if (
            choice === undefined ||
            candidate === undefined ||
            needTokens - choice.sharedTokens > candidate.roomTokens
          ) {
            return spillPlacement(open, needTokens)
          }
          last = { ticketId: ticket.id, choice }
          return {
            backendId: candidate.backendId,
            roomTokens: candidate.roomTokens,
            sharedPromptTokens: Math.max(0, choice.sharedTokens),
          }
        },
        limitsFor(ticket): CapacityLimits | undefined {
          let usable = 0
          let known = 0
          let anyUsable = false
          for (const row of poolOf(ticket.model)) {
            known = Math.max(known, row.usableTokens)
            if (!row.open) continue
            anyUsable = true
            usable = Math.max(usable, row.usableTokens)
          }
          return anyUsable ? { maxUsableTokens: usable, maxKnownTokens: known } : undefined
        },
      }
    },
    usableTokens() {
      const headroomRatio = options.headroomRatio()
      let usable = 0
      for (const b of options.backends()) {
        if (b.usable && !b.draining && b.models !== undefined && b.capacityTokens > 0) {
          usable += b.capacityTokens * (1 - headroomRatio)
        }
      }
      return usable
    },
    onAdmitted(ticket, placement) {
      const choice = last?.ticketId === ticket.id ? last.choice : undefined
      last = undefined
      if (choice === undefined || choice.backendId !== placement.backendId) return
      const nowMs = options.clock.now()
      routed.add(ticket.id)
      options.router().onAdmitted(routeRequest(ticket.promptTokens, ticket, nowMs), choice, nowMs)
      options.onRouted?.(ticket, choice)
    },
    onFinished(ticket) {
      if (!routed.delete(ticket.id)) return
      options.router().onFinished(ticket.id, options.clock.now())
    },
  }
}
