import type { Ledger } from '../ledger/index.js'
import type { BackendCapacity } from '../upstream/index.js'
import type { CapacitySnapshot, CapacityView, Placement } from './contracts.js'
import { extraRoom, FINAL_SIZE_RULES, type RoomRules } from './room-rules.js'

/**
 * One backend's room: `(capacity − used) − headroom − outstanding + freed` of the local ledger (or what a
 * shared ledger's `base` says), plus what the room rules add; and whether the overcommit rule lets one more
 * request go beyond it (`spill`). The default view and the fleet's (src/routing) both count it so.
 */
export function backendRoom<B extends BackendCapacity>(
  backend: B,
  headroomTokens: number,
  ledger: Ledger,
  rules: RoomRules,
  base?: (backend: B, headroomTokens: number) => number,
): { room: number; spill: boolean } {
  const extra = extraRoom(ledger.live(backend.id), rules, backend.waiting)
  const room =
    base?.(backend, headroomTokens) ??
    backend.capacityTokens -
      backend.usedTokens -
      headroomTokens -
      ledger.outstandingTokens(backend.id) +
      ledger.freedTokens(backend.id)
  return { room: room + extra.tokens, spill: extra.spill }
}

export interface MostRoomViewOptions {
  backends: () => readonly BackendCapacity[]
  ledger: Ledger
  /** Read at every snapshot, so a reload of the headroom applies to the next decision. */
  headroomRatio: () => number
  /** How reservations count against the room (room-rules.ts); the classic final-size rule by default. */
  rules?: () => RoomRules
  /**
   * The room on a backend; by default `(capacity − used) − headroom − ledger.outstanding(backend) + ledger.freed(backend)`. A ledger
   * shared between replicas (src/state) counts every replica's reservations against the shared poll here.
   */
  room?: (backend: BackendCapacity, headroomTokens: number) => number
}

/**
 * The default capacity view: per backend,
 * `room = (capacity − used) − headroomRatio × capacity − ledger.outstanding + ledger.freed + extra`, and a
 * request goes to the usable backend with the most room when its need fits there. `freed` is KV the last poll
 * still counts although the requests holding it have ended (the poll lag after a finish); `extra` is what the
 * room rules (room-rules.ts: reserve by the running set's peak, a bounded overcommit) add to the classic
 * final-size rule. With one pool of identical replicas this is the choice that keeps the most room for the
 * next, larger request.
 */
export function createMostRoomView(options: MostRoomViewOptions): CapacityView {
  const { ledger } = options
  return {
    snapshot(): CapacitySnapshot | undefined {
      const headroomRatio = options.headroomRatio()
      const rules = options.rules?.() ?? FINAL_SIZE_RULES
      let best: Placement | undefined
      let maxUsableTokens = 0
      let maxKnownTokens = 0
      let totalRoomTokens = 0
      /** The backend with the most room among those that may take one more request beyond it. */
      let spill: (Placement & { usableTokens: number }) | undefined
      for (const backend of options.backends()) {
        if (!(backend.capacityTokens > 0)) continue
        const headroom = headroomRatio * backend.capacityTokens
        maxKnownTokens = Math.max(maxKnownTokens, backend.capacityTokens - headroom)
        if (!backend.usable) continue
        maxUsableTokens = Math.max(maxUsableTokens, backend.capacityTokens - headroom)
        const { room, spill: spills } = backendRoom(backend, headroom, ledger, rules, options.room)
        totalRoomTokens += Math.max(0, room)
        // Strictly more: equal rooms go to the first backend listed, so the order of `backends` breaks ties.
        if (best === undefined || room > best.roomTokens) best = { backendId: backend.id, roomTokens: room }
        if (spills && (spill === undefined || room > spill.roomTokens)) {
          spill = { backendId: backend.id, roomTokens: room, usableTokens: backend.capacityTokens - headroom }
        }
      }
      if (best === undefined) return undefined
      const placement = best
      const spilled = spill
      return {
        // Beyond the room only what could run alone on the spill backend: it waits in vLLM's queue meanwhile.
        place: (needTokens) =>
          needTokens <= placement.roomTokens
            ? placement
            : spilled !== undefined && needTokens <= spilled.usableTokens
              ? { backendId: spilled.backendId, roomTokens: spilled.roomTokens }
              : undefined,
        maxRoomTokens: Math.max(placement.roomTokens, spilled?.usableTokens ?? Number.NEGATIVE_INFINITY),
        maxUsableTokens,
        maxKnownTokens,
        totalRoomTokens,
      }
    },
    usableTokens() {
      const headroomRatio = options.headroomRatio()
      let usable = 0
      for (const backend of options.backends()) {
        if (backend.usable && backend.capacityTokens > 0) usable += backend.capacityTokens * (1 - headroomRatio)
      }
      return usable
    },
  }
}
