/**
 * The KV ledger: one reservation per admitted request, on the backend it was sent to.
 *
 * Why it exists: admission reads each backend's KV usage from a `/metrics` poll every ~100 ms. A burst of
 * admissions between two polls is invisible to that figure, so without a ledger the gateway would admit the
 * whole burst into the same "free" space (the seed-004 prototype's problem). A reservation stands in for the
 * KV a request will hold until the poll can see it.
 *
 * Reconciliation with polled usage (see docs/ledger.md for a worked example):
 *
 *   - A reservation reserves `prompt + predicted` tokens at admission and grows whenever the request streams
 *     past its prediction (`reserved ≥ prompt + generated` always), so the ledger never under-counts.
 *   - The upstream poller calls `beginPoll(backend)` right before it sends `GET /metrics`. The mark records, per
 *     live reservation, what the backend must already hold for it at that instant: `prompt + generated` if
 *     the first token had arrived (vLLM has allocated the prompt's blocks and every token generated so far),
 *     else 0 (the request may still be waiting in vLLM's queue, its blocks not allocated: we cannot assume
 *     the poll sees it).
 *   - After the poll parsed successfully the poller calls `completePoll(mark)`: those recorded amounts become
 *     each reservation's `visible` part — already inside the backend's `usedTokens`.
 *   - `outstanding = max(0, reserved − visible)` is what the poll cannot see yet; admission subtracts
 *     `Σ outstanding` from the polled free space. Counting `reserved` in full would count the visible part
 *     twice (once in `used`, once in the ledger) and slowly choke admission as requests grow.
 *
 * Snapshotting at `beginPoll` rather than at `completePoll` matters: tokens generated while the poll's HTTP
 * round trip is in flight may or may not be in the scraped figure, so they stay outstanding (counted twice at
 * worst, never missed). A failed poll simply never completes its mark; an older mark completing after a newer
 * one is ignored, so visibility only moves forward.
 *
 * Invariant: the per-backend totals are kept incrementally and equal the sum over live reservations, so with
 * nothing live `Σ outstanding == Σ reserved == 0`. `release()` is idempotent: every ending (success, client
 * abort, upstream error, deadline, shutdown) may call it, and only the first call changes the totals.
 */

export interface Reservation {
  readonly requestId: string
  readonly backendId: string
  readonly promptTokens: number
  /** prompt + predicted at admission; grows when the request streams past its prediction. */
  readonly reservedTokens: number
  readonly generatedTokens: number
  readonly released: boolean
  /** Whether the first token has arrived (the backend has allocated the prompt's blocks). */
  readonly started: boolean
  /** The part of `reservedTokens` already inside the backend's polled usage. */
  readonly visibleTokens: number
  /** `max(0, reserved − visible)`: what admission must still subtract from the polled free space. */
  readonly outstandingTokens: number
  /** `reserved − prompt − generated`: output reserved but not generated yet (0 once it outgrew its prediction). */
  readonly ungeneratedTokens: number
  /** First token arrived: the backend has allocated the prompt's blocks. */
  markStarted(): void
  /** `n` more completion tokens; grows `reservedTokens` when prompt + generated would exceed it. */
  addGenerated(n: number): void
  /** Idempotent; true only the first time. */
  release(reason: string): boolean
}

/** A live reservation as the debug endpoint lists it. */
export interface ReservationInfo {
  readonly requestId: string
  readonly backendId: string
  readonly promptTokens: number
  readonly reservedTokens: number
  readonly generatedTokens: number
  readonly started: boolean
  readonly visibleTokens: number
  readonly outstandingTokens: number
}

/** Opaque handle from `beginPoll`, handed back to `completePoll`. */
export interface PollMark {
  readonly backendId: string
  readonly seq: number
}

export interface Ledger {
  reserve(input: {
    backendId: string
    requestId: string
    promptTokens: number
    predictedOutputTokens: number
  }): Reservation
  /** Σ max(0, reserved − visible) — what admission subtracts from the polled free space. */
  outstandingTokens(backendId?: string): number
  reservedTokens(backendId?: string): number
  /**
   * Σ (reserved − prompt − generated): output reserved but not generated yet. Held by nobody in the KV
   * cache now; the part of the ledger a peak-based room rule (or an overcommit) may lend out for a while.
   */
  ungeneratedTokens(backendId?: string): number
  /**
   * Σ visible part of the reservations released since the backend's last completed poll: KV the last poll
   * still counts as used although vLLM freed it when those requests ended. Adding it back to the room closes
   * the poll lag after a finish (a poll already in flight at the release may or may not see the blocks, so
   * any completed poll clears it: never counted free twice).
   */
  freedTokens(backendId: string): number
  /** The live reservations of one backend, without a copy (iterate, do not keep). */
  live(backendId: string): Iterable<Reservation>
  liveCount(backendId?: string): number
  /** Backends that have live reservations or did have (for per-backend gauges). */
  backendIds(): string[]
  list(): ReservationInfo[]
  /** The upstream poller calls this right before it sends `GET /metrics` to the backend. */
  beginPoll(backendId: string): PollMark
  /** ...and this after the response parsed successfully. */
  completePoll(mark: PollMark): void
  /** Recompute the totals from the live reservations; tests compare it with the incremental totals. */
  audit(): { reservedTokens: number; outstandingTokens: number; ungeneratedTokens: number; liveCount: number }
}

export interface LedgerOptions {
  /** Called after any change to the totals (gauges, or a dispatch when space appeared). */
  onChange?: () => void
  /** Called once per release with its reason, e.g. for a log line. */
  onRelease?: (reservation: Reservation, reason: string) => void
}

interface BackendBook {
  readonly live: Set<ReservationImpl>
  reserved: number
  outstanding: number
  ungenerated: number
  freed: number
  /** Sequence number of the newest poll mark handed out, and of the newest one completed. */
  issuedSeq: number
  completedSeq: number
  /** Pending marks: seq → visible amount per reservation at beginPoll. */
  readonly pending: Map<number, Map<ReservationImpl, number>>
}

/** Marks a poller never completes (failed polls) are dropped after this many newer marks. */
const MAX_PENDING_POLLS = 8

/**
 * One reservation. It keeps its backend's totals in step itself on every change, so the totals can never
 * drift from the sum over live reservations (`audit()` checks exactly that).
 */
class ReservationImpl implements Reservation {
  readonly requestId: string
  readonly backendId: string
  readonly promptTokens: number
  readonly #book: BackendBook
  readonly #options: LedgerOptions
  #reserved: number
  #generated = 0
  #visible = 0
  #started = false
  #released = false

  constructor(
    book: BackendBook,
    options: LedgerOptions,
    requestId: string,
    backendId: string,
    promptTokens: number,
    reservedTokens: number,
  ) {
    this.#book = book
    this.#options = options
    this.requestId = requestId
    this.backendId = backendId
    this.promptTokens = promptTokens
    this.#reserved = reservedTokens
    book.live.add(this)
    book.reserved += reservedTokens
    book.outstanding += reservedTokens
    book.ungenerated += reservedTokens - promptTokens
  }

  /** Output reserved but not generated yet. */
  get ungeneratedTokens(): number {
    return this.#reserved - this.promptTokens - this.#generated
  }

  get reservedTokens(): number {
    return this.#reserved
  }
  get generatedTokens(): number {
    return this.#generated
  }
  get visibleTokens(): number {
    return this.#visible
  }
  get outstandingTokens(): number {
    return Math.max(0, this.#reserved - this.#visible)
  }
  get started(): boolean {
    return this.#started
  }
  get released(): boolean {
    return this.#released
  }

  markStarted(): void {
    if (!this.#released) this.#started = true
  }

  addGenerated(n: number): void {
    if (this.#released || !(n > 0)) return
    const ungeneratedBefore = this.ungeneratedTokens
    this.#generated += n
    const held = this.promptTokens + this.#generated
    if (held <= this.#reserved) {
      this.#book.ungenerated -= ungeneratedBefore - this.ungeneratedTokens
      return
    }
    this.#book.ungenerated -= ungeneratedBefore
    // Outgrew the prediction: grow so the ledger never counts less than the request holds.
    const outstandingBefore = this.outstandingTokens
    this.#book.reserved += held - this.#reserved
    this.#reserved = held
    this.#book.outstanding += this.outstandingTokens - outstandingBefore
    this.#options.onChange?.()
  }

  release(reason: string): boolean {
    if (this.#released) return false
    this.#released = true
    const book = this.#book
    book.reserved -= this.#reserved
    book.outstanding -= this.outstandingTokens
    book.ungenerated -= this.ungeneratedTokens
    book.freed += this.#visible
    book.live.delete(this)
    // vLLM frees a finished request's blocks; the next poll shows that, so it leaves the pending marks.
    for (const snapshot of book.pending.values()) snapshot.delete(this)
    this.#options.onRelease?.(this, reason)
    this.#options.onChange?.()
    return true
  }

  /** What the backend must hold for this request now, if it is known to hold anything (see beginPoll). */
  heldNow(): number | undefined {
    return this.#started ? this.promptTokens + this.#generated : undefined
  }

  /** A completed poll saw `visible` tokens of it; visibility only moves forward. */
  reconcile(visible: number): void {
    if (this.#released || visible <= this.#visible) return
    const outstandingBefore = this.outstandingTokens
    this.#visible = visible
    this.#book.outstanding += this.outstandingTokens - outstandingBefore
  }
}

class LedgerImpl implements Ledger {
  readonly #books = new Map<string, BackendBook>()
  readonly #options: LedgerOptions

  constructor(options: LedgerOptions) {
    this.#options = options
  }

  #book(backendId: string): BackendBook {
    let book = this.#books.get(backendId)
    if (book === undefined) {
      book = {
        live: new Set(),
        reserved: 0,
        outstanding: 0,
        ungenerated: 0,
        freed: 0,
        issuedSeq: 0,
        completedSeq: 0,
        pending: new Map(),
      }
      this.#books.set(backendId, book)
    }
    return book
  }

  reserve(input: {
    backendId: string
    requestId: string
    promptTokens: number
    predictedOutputTokens: number
  }): Reservation {
    const prompt = Math.max(0, Math.ceil(input.promptTokens))
    const predicted = Math.max(0, Math.ceil(input.predictedOutputTokens))
    const reservation = new ReservationImpl(
      this.#book(input.backendId),
      this.#options,
      input.requestId,
      input.backendId,
      prompt,
      prompt + predicted,
    )
    this.#options.onChange?.()
    return reservation
  }

  #sum(pick: (book: BackendBook) => number, backendId?: string): number {
    if (backendId !== undefined) {
      const book = this.#books.get(backendId)
      return book === undefined ? 0 : pick(book)
    }
    let total = 0
    for (const book of this.#books.values()) total += pick(book)
    return total
  }

  outstandingTokens(backendId?: string): number {
    return this.#sum((book) => book.outstanding, backendId)
  }

  reservedTokens(backendId?: string): number {
    return this.#sum((book) => book.reserved, backendId)
  }

  ungeneratedTokens(backendId?: string): number {
    return this.#sum((book) => book.ungenerated, backendId)
  }

  freedTokens(backendId: string): number {
    return this.#books.get(backendId)?.freed ?? 0
  }

  live(backendId: string): Iterable<Reservation> {
    return this.#books.get(backendId)?.live ?? []
  }

  liveCount(backendId?: string): number {
    return this.#sum((book) => book.live.size, backendId)
  }

  backendIds(): string[] {
    return [...this.#books.keys()]
  }

  list(): ReservationInfo[] {
    const out: ReservationInfo[] = []
    for (const book of this.#books.values()) {
      for (const r of book.live) {
        out.push({
          requestId: r.requestId,
          backendId: r.backendId,
          promptTokens: r.promptTokens,
          reservedTokens: r.reservedTokens,
          generatedTokens: r.generatedTokens,
          started: r.started,
          visibleTokens: r.visibleTokens,
          outstandingTokens: r.outstandingTokens,
        })
      }
    }
    return out
  }

  beginPoll(backendId: string): PollMark {
    const book = this.#book(backendId)
    const seq = ++book.issuedSeq
    const snapshot = new Map<ReservationImpl, number>()
    for (const r of book.live) {
      // Only a started request is known to hold blocks; a not-yet-started one may still be queued in vLLM.
      const held = r.heldNow()
      if (held !== undefined) snapshot.set(r, held)
    }
    book.pending.set(seq, snapshot)
    // Failed polls never complete; forget their marks so a flapping backend cannot grow this map.
    for (const old of book.pending.keys()) {
      if (old > seq - MAX_PENDING_POLLS) break
      book.pending.delete(old)
    }
    return { backendId, seq }
  }

  completePoll(mark: PollMark): void {
    const book = this.#books.get(mark.backendId)
    if (book === undefined) return
    const snapshot = book.pending.get(mark.seq)
    if (snapshot === undefined) return
    // This poll and every older pending one are settled: an older poll completing later would move
    // visibility backwards, so it is dropped here.
    for (const seq of book.pending.keys()) {
      if (seq > mark.seq) break
      book.pending.delete(seq)
    }
    if (mark.seq <= book.completedSeq) return
    book.completedSeq = mark.seq
    book.freed = 0
    // Reservations absent from the snapshot (not started then) keep their earlier visible part.
    for (const [r, visible] of snapshot) r.reconcile(visible)
    this.#options.onChange?.()
  }

  audit(): { reservedTokens: number; outstandingTokens: number; ungeneratedTokens: number; liveCount: number } {
    let reservedTokens = 0
    let outstandingTokens = 0
    let ungeneratedTokens = 0
    let liveCount = 0
    for (const book of this.#books.values()) {
      for (const r of book.live) {
        reservedTokens += r.reservedTokens
        outstandingTokens += r.outstandingTokens
        ungeneratedTokens += r.ungeneratedTokens
        liveCount++
      }
    }
    return { reservedTokens, outstandingTokens, ungeneratedTokens, liveCount }
  }
}

export function createLedger(options: LedgerOptions = {}): Ledger {
  return new LedgerImpl(options)
}
