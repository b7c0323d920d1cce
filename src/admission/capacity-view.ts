import type { Ledger } from '../ledger/index.js'
import type { BackendCapacity } from '../upstream/index.js'
import type { CapacitySnapshot, CapacityView, Placement } from './contracts.js'

export interface MostRoomViewOptions {
  backends: () => readonly BackendCapacity[]
  ledger: Ledger
  /** Read at every snapshot, so a reload of the headroom applies to the next decision. */
  headroomRatio: () => number
  /**
   * The room on a backend; by default `(capacity − used) − headroom − ledger.outstanding(backend)`. A ledger
   * shared between replicas (src/state) counts every replica's reservations against the shared poll here.
   */
  room?: (backend: BackendCapacity, headroomTokens: number) => number
}

/**
 * The default capacity view: per backend,
 * `room = (capacity − used) − headroomRatio × capacity − ledger.outstanding(backend)`, and a request goes to
 * the usable backend with the most room when its need fits there. With one pool of identical replicas this is
 * the choice that keeps the most room for the next, larger request.
 */
export function createMostRoomView(options: MostRoomViewOptions): CapacityView {
  const { ledger } = options
  return {
    snapshot(): CapacitySnapshot | undefined {
      const headroomRatio = options.headroomRatio()
      let best: Placement | undefined
      let maxUsableTokens = 0
      let maxKnownTokens = 0
      let totalRoomTokens = 0
      for (const backend of options.backends()) {
        if (!(backend.capacityTokens > 0)) continue
        const headroom = headroomRatio * backend.capacityTokens
        maxKnownTokens = Math.max(maxKnownTokens, backend.capacityTokens - headroom)
        if (!backend.usable) continue
        maxUsableTokens = Math.max(maxUsableTokens, backend.capacityTokens - headroom)
        const room =
          options.room?.(backend, headroom) ??
          backend.capacityTokens - backend.usedTokens - headroom - ledger.outstandingTokens(backend.id)
        totalRoomTokens += Math.max(0, room)
        // Strictly more: equal rooms go to the first backend listed, so the order of `backends` breaks ties.
        if (best === undefined || room > best.roomTokens) best = { backendId: backend.id, roomTokens: room }
      }
      if (best === undefined) return undefined
      const placement = best
      return {
        place: (needTokens) => (needTokens <= placement.roomTokens ? placement : undefined),
        maxRoomTokens: placement.roomTokens,
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
