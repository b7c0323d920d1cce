import type { Reservation } from '../ledger/index.js'

/**
 * How much of the ledger a new request may use, beyond the classic rule "a reservation holds its whole
 * final size (prompt + predicted output) from admission to its end".
 *
 * - `final`: the classic rule. Safe, and strict: the output part of a reservation is empty when it is
 *   admitted and fills one token per step, and requests end at different times, so the running set never
 *   holds the sum of its final sizes at once.
 * - `peak`: reserve by the peak of the running set's future occupancy instead. A started request holds
 *   `prompt + generated` now and grows one token per decode step until its predicted end (vLLM decodes every
 *   running request once per step), then frees it all; the occupancy at step t is
 *   Σ over requests still running at t of (held + t). Its maximum over the future is taken just before each
 *   request ends, so it costs one sort of the running set. A request vLLM has not started yet may start at any
 *   time: it counts with its whole final size throughout, and so does one that outgrew its prediction (it
 *   grows until it ends, and nobody knows when). A new request of need n fits when n ≤ room with
 *   `room = classic room + (Σ final sizes − peak)`: adding it raises the peak by at most n, so the peak still
 *   fits. With predictions that hold, this admits more and preempts no more than `final`.
 *
 * The overcommit (`overcommit.ratio`) goes one step further and lends a share of what is still reserved for
 * future growth after the peak is counted, but only while the backend's own waiting queue is short
 * (`overcommit.maxBackendWaiting`): predictions are a high quantile, most answers end well before them, and a
 * request admitted a little early waits briefly inside vLLM instead of being turned away. It bets on the
 * predictor's over-reservation. `overcommit.requests` lets up to that many admitted-but-not-started requests
 * per backend go beyond the room (under the same short-queue condition): they wait inside vLLM, which starts
 * each the moment its blocks free, instead of in kvgate's queue until the next poll shows the room.
 * docs/admission-quality.md measures what each costs in preemptions.
 */
export type ReserveBy = 'final' | 'peak'

export interface OvercommitRule {
  /** Share (0–1) of the remaining reserved growth that may be lent; 0 = none. */
  readonly ratio: number
  /**
   * Requests kvgate may send beyond the room to wait in vLLM's own queue, counted as its admitted requests
   * that have not started yet on that backend; 0 = none. vLLM then starts each the moment its blocks free,
   * without waiting for kvgate's next poll.
   */
  readonly requests: number
  /** Overcommit only while the backend has at most this many requests waiting in its own queue (polled). */
  readonly maxBackendWaiting: number
}

export interface RoomRules {
  readonly reserveBy: ReserveBy
  readonly overcommit: OvercommitRule
}

export const FINAL_SIZE_RULES: RoomRules = Object.freeze({
  reserveBy: 'final',
  overcommit: Object.freeze({ ratio: 0, requests: 0, maxBackendWaiting: 0 }),
})

/**
 * What the rules add to the classic room of one backend, in tokens (≥ 0), and whether one more request may
 * be sent beyond the room to wait in vLLM's queue (`spill`).
 */
export function extraRoom(
  reservations: Iterable<Reservation>,
  rules: RoomRules,
  backendWaiting: number | undefined,
): { tokens: number; spill: boolean } {
  const { ratio, requests, maxBackendWaiting } = rules.overcommit
  if (rules.reserveBy === 'final' && ratio === 0 && requests === 0) return { tokens: 0, spill: false }
  const { savings, growth, notStarted } = peakProfile(reservations, rules.reserveBy === 'peak')
  const lendable = backendWaiting !== undefined && backendWaiting <= maxBackendWaiting
  return { tokens: savings + (lendable ? ratio * growth : 0), spill: lendable && notStarted < requests }
}

/**
 * `savings`: Σ reserved − the peak future occupancy (0 when the peak is not asked for, or is not lower);
 * `growth`: the output still reserved for started requests' growth, less the savings (what an overcommit may
 * lend a share of).
 */
export function peakProfile(
  reservations: Iterable<Reservation>,
  withPeak: boolean,
): { savings: number; growth: number; notStarted: number } {
  let reserved = 0
  let growthReserved = 0
  /** Held throughout the horizon and growing: outgrown requests. */
  let overrunHeld = 0
  let overruns = 0
  /** Held at their final size throughout: not started yet. */
  let fixed = 0
  let notStarted = 0
  const profile: { held: number; remaining: number }[] = []
  for (const r of reservations) {
    if (r.released) continue
    reserved += r.reservedTokens
    if (!r.started) {
      fixed += r.reservedTokens
      notStarted++
      continue
    }
    const held = r.promptTokens + r.generatedTokens
    const remaining = r.ungeneratedTokens
    if (remaining > 0) {
      growthReserved += remaining
      if (withPeak) profile.push({ held, remaining })
      else fixed += r.reservedTokens
    } else {
      overrunHeld += held
      overruns++
    }
  }
  if (!withPeak) return { savings: 0, growth: growthReserved, notStarted }
  // Latest end first: each prefix of this order is what still runs just before the next one ends.
  profile.sort((a, b) => b.remaining - a.remaining)
  let heldSoFar = 0
  let alive = 0
  let peak = 0
  for (const item of profile) {
    heldSoFar += item.held
    alive++
    const t = item.remaining
    peak = Math.max(peak, fixed + overrunHeld + overruns * t + heldSoFar + alive * t)
  }
  // Now (t = 0): everything held as it is.
  peak = Math.max(peak, fixed + overrunHeld + heldSoFar)
  const savings = Math.max(0, reserved - peak)
  return { savings, growth: Math.max(0, growthReserved - savings), notStarted }
}
