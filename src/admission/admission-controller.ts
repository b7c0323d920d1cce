import type { Clock } from '../core/index.js'
import { errors, type KvgateError } from '../errors/index.js'
import type { Ledger, Reservation } from '../ledger/index.js'
import type { Policy, PolicyRequest, PolicyUser, RateLimitState, WaitAhead } from '../policies/index.js'
import { AdmissionReporter, warnFault } from './admission-events.js'
import { AdmittedRequest } from './admitted.js'
import { createMostRoomView } from './capacity-view.js'
import type {
  Admission,
  AdmissionController,
  AdmissionControllerOptions,
  AdmissionEvent,
  AdmissionStats,
  AdmissionTicket,
  AdmissionTuning,
  AdmissionConfirmer,
  CapacityView,
  ConfirmVerdict,
  ItemEndings,
  Placement,
  QueuedInfo,
} from './contracts.js'
import { DeadlineSweep, expiryRejection, OUTCOME } from './deadline-sweep.js'
import { Dispatcher } from './dispatcher.js'
import type { PolicyGuard } from './policy-guard.js'
import { arrivalLimits, newQueueItem, queueDeadlineMs, queuedInfo } from './queue-entry.js'
import { QueueStore, type QueueItem } from './queue-store.js'
import { validateTuning } from './tuning.js'
import { arrivalVerdict } from './arrival-check.js'
import { NEED_BUCKET_LABELS, RETRY_AFTER_QUANTILE, TtftAfterAdmission } from './wait-calibration.js'
import { buildQueueView, type QueueView, type QueueViewOptions } from './queue-view.js'
import { formatDuration, rejectionHeaders } from './retry-after.js'
import { askConfirmation, noteRefusal, waitingOnConfirmation } from './confirmation.js'
import { WaitPrediction } from './wait-prediction.js'

/**
 * The admission queue: per-user FIFO queues, the dispatcher that admits heads when the KV cache has room, and
 * the deadline tick that answers 429 to what waited too long. This file composes the parts (see
 * contracts.ts for the map) and owns what happens to one request: submit, admit, reject, cancel.
 *
 * Division of labour: the policy orders *users* (`candidates()`) and gates quotas; this module owns the
 * requests (one FIFO per user), the KV check through the capacity view, deadlines, and the rejections with
 * their `retry-after`. A head is admitted when `need ≤ room` on the backend the view places it on, with
 * `need = prompt + predicted output` (capped at the largest backend's usable capacity, so a request whose
 * prediction exceeds a whole cache can still run alone; only a *prompt* that exceeds it is refused, 400).
 *
 * Faults: every call into the policy goes through a `PolicyGuard` and every event listener call is caught, so
 * a collaborator's exception is reported (`onFault`) and never leaves a request half-admitted: a request the
 * policy failed on is answered 500 `internal_error`; a finished one stays finished.
 *
 * Every structure a decision touches (per-user intrusive lists, the deadline heap, running totals) is O(1) or
 * O(log n): a decision with 10,000 queued requests costs about what it costs with 10, and nothing walks the
 * whole queue except the debug listing `queued()`, a reload and shutdown.
 */
class AdmissionControllerImpl implements AdmissionController, ItemEndings<QueueItem> {
  #tuning: AdmissionTuning
  readonly #clock: Clock
  readonly #ledger: Ledger
  readonly #report: AdmissionReporter
  readonly #store = new QueueStore()
  readonly #capacity: CapacityView
  readonly #confirmer: AdmissionConfirmer | undefined
  readonly #prediction: WaitPrediction
  readonly #ttft = new TtftAfterAdmission()
  readonly #sweep: DeadlineSweep
  readonly #dispatcher: Dispatcher
  #policy: PolicyGuard
  #seq = 0
  #closed = false

  constructor(options: AdmissionControllerOptions) {
    this.#tuning = validateTuning(options)
    this.#clock = options.clock
    this.#ledger = options.ledger
    this.#report = new AdmissionReporter(options.onEvent, options.onFault ?? warnFault)
    this.#policy = this.#report.guard(options.policy)
    this.#confirmer = options.confirmer
    this.#capacity =
      options.capacity ??
      createMostRoomView({
        backends: options.backends,
        ledger: options.ledger,
        headroomRatio: () => this.#tuning.headroomRatio,
        rules: () => this.#tuning,
      })
    this.#prediction = new WaitPrediction(this.#clock, this.#capacity, options.onWaitCheck)
    this.#sweep = new DeadlineSweep({
      clock: this.#clock,
      store: this.#store,
      tickMs: this.#tuning.deadlineTickMs,
      expire: (item, denied, now) => {
        this.#remove(item, now)
        const { error, retryAfterMs } = expiryRejection(item, denied, now, {
          capacity: this.#capacity,
          policy: this.#policy,
          predictWaitMs: (request) => this.#predictRetryMs(request, now),
        })
        if (item.predictedWaitMs !== undefined) {
          this.#prediction.check('expired', item.needBucket, item.predictedWaitMs, now - item.enqueuedAtMs)
        }
        this.#settleRejected(item, error, now, retryAfterMs)
      },
      dispatch: () => this.dispatch(),
    })
    this.#dispatcher = new Dispatcher({
      clock: this.#clock,
      store: this.#store,
      capacity: this.#capacity,
      prediction: this.#prediction,
      policy: () => this.#policy,
      maxBypassMs: () => this.#tuning.maxBypassMs,
      endings: this,
      ...(this.#confirmer === undefined
        ? {}
        : { waiting: (item, now) => waitingOnConfirmation(item, now, this.#confirmer?.epoch()) }),
      sweep: this.#sweep,
      closed: () => this.#closed,
      afterDispatch: (now) => this.#prediction.settleShadows(now),
    })
  }

  // --- submit ---------------------------------------------------------------------------------------------

  submit(ticket: AdmissionTicket): Promise<Admission> {
    const now = this.#clock.now()
    const prompt = Math.max(0, Math.ceil(ticket.promptTokens))
    const predicted = Math.max(0, Math.ceil(ticket.predictedOutputTokens))
    const immediate = (error: KvgateError, retryAfterMs?: number): Promise<Admission> => {
      this.#report.emitEnding(ticket, 0, error, retryAfterMs)
      return Promise.reject(error)
    }

    if (this.#closed) return immediate(errors.shuttingDown([], OUTCOME))
    if (ticket.signal?.aborted === true) return immediate(errors.requestCancelled(['waited for admission'], OUTCOME))
    const checked = arrivalLimits(this.#capacity.snapshot(), ticket, prompt)
    if ('error' in checked) return immediate(checked.error)
    const { limits } = checked
    // A prediction larger than a whole cache is capped: the request runs alone on an empty backend and its
    // reservation grows as it streams.
    const needTokens = Math.min(prompt + predicted, Math.floor(limits.maxKnownTokens))
    if (this.#store.depth >= this.#tuning.maxQueueLength) {
      const waitMs = this.predictWaitMs(ticket.user, needTokens)
      const error = errors.queueFull([this.#store.depth, formatDuration(Math.max(1_000, waitMs))], {
        ...OUTCOME,
        headers: rejectionHeaders(errors.queueFull.code, waitMs, this.#policy.rateLimits(ticket.user, now)),
      })
      return immediate(error, waitMs)
    }

    const deadlineMs = queueDeadlineMs(ticket, prompt, this.#tuning.ttftSloMs, this.#ttft)
    return new Promise<Admission>((resolve, reject) => {
      const userQueue = this.#store.queueFor(ticket.user)
      const item = newQueueItem({
        seq: ++this.#seq,
        ticket,
        promptTokens: prompt,
        needTokens,
        now,
        deadlineMs,
        userQueue,
        resolve,
        reject,
      })
      this.#store.add(item)
      if (item.userQueue.head === item) this.#confirmer?.noteHead(ticket.user, needTokens)
      if (!this.#policy.onEnqueue(item.request, now)) {
        // The policy may not know it: it must not stay where the policy would have to order it.
        this.#unlink(item, now)
        this.#settleRejected(item, errors.internal(['the fairness policy failed'], OUTCOME), now)
        return
      }
      if (ticket.signal !== undefined) {
        const onAbort = (): void => this.#cancel(item)
        item.onAbort = onAbort
        ticket.signal.addEventListener('abort', onAbort, { once: true })
      }
      this.dispatch()
      if (item.queued) this.#checkOnArrival(item)
    })
  }

  /** Not admitted at once: predict its wait (kept, to be checked), and answer now what cannot make it. */
  #checkOnArrival(item: QueueItem): void {
    const now = this.#clock.now()
    const verdict = arrivalVerdict(item, this.#waitAhead(item.request, now), this.#prediction, {
      earlyReject: this.#tuning.earlyReject,
      now,
      rateLimits: () => this.#policy.rateLimits(item.ticket.user, now),
    })
    if (verdict === undefined) return
    this.#remove(item, now)
    // Shadowed after it left, so its own departure does not count as its turn coming.
    const { shadow } = verdict
    if (shadow !== undefined)
      this.#prediction.shadow(shadow.ahead, item.needTokens, shadow.predictedMs, shadow.bucket, now)
    this.#settleRejected(item, verdict.error, now, verdict.retryAfterMs)
  }

  /** The policy's wait estimate; if it fails, everything queued counts as ahead (FIFO's view). */
  #waitAhead(request: PolicyRequest, now: number): WaitAhead {
    return (
      this.#policy.waitAhead(request, now) ?? {
        tokensAhead: this.#store.queuedNeedTokens,
        quotaWaitMs: 0,
      }
    )
  }

  /** retry-after for a request not (or no longer) queued: its predicted wait now, at the median calibration. */
  #predictRetryMs(request: PolicyRequest, now: number): number {
    const ahead = this.#waitAhead(request, now)
    const need = request.promptTokens + request.predictedOutputTokens
    const kvMs = this.#prediction.rawWaitMs({ ...ahead, quotaWaitMs: 0 }, need, now)
    const bucket = this.#prediction.bucketOf(need)
    return Math.max(ahead.quotaWaitMs, this.#prediction.calibrated(kvMs, bucket, RETRY_AFTER_QUANTILE))
  }

  // --- how an item leaves the queue (ItemEndings: the dispatcher and the sweep call these) ------------------

  admit(item: QueueItem, placement: Placement, now: number): void {
    const confirmer = this.#confirmer
    // A shared ledger: reserve here first, so the decisions that follow count it, then have it confirmed.
    const reservation = confirmer === undefined ? undefined : this.#reserve(item, placement)
    const verdict =
      reservation && confirmer && askConfirmation(confirmer, this.#policy, item, placement, reservation, now)
    if (verdict === undefined || reservation === undefined) {
      this.#admitNow(item, placement, now, reservation)
      return
    }
    item.confirming = true
    const settle = (v: ConfirmVerdict): void => this.#settleConfirmation(item, placement, reservation, v)
    verdict.then(settle, () => settle({ confirmed: false }))
  }

  #reserve(item: QueueItem, placement: Placement): Reservation {
    // Blocks shared with requests running there are held already: reserving them again would count them twice.
    const shared = Math.min(item.request.promptTokens, Math.max(0, Math.floor(placement.sharedPromptTokens ?? 0)))
    return this.#ledger.reserve({
      backendId: placement.backendId,
      requestId: item.ticket.id,
      promptTokens: item.request.promptTokens - shared,
      predictedOutputTokens: item.request.predictedOutputTokens,
    })
  }

  /** Admit with a reservation made now, or with one a shared ledger has just confirmed. */
  #admitNow(item: QueueItem, placement: Placement, now: number, reserved: Reservation | undefined): void {
    // Tokens that had to wait for KV; a request admitted straight into an idle queue measures arrivals, not drain.
    const backlog = this.#prediction.kvBound && (this.#store.depth > 1 || now > item.enqueuedAtMs)
    this.#unlink(item, now)
    const policy = this.#policy
    if (!policy.onAdmit(item.request, now)) {
      // Charged halfway, or not at all: the policy forgets it and the client hears of the bug.
      policy.onRemove(item.request, now)
      reserved?.release('policy_fault')
      this.#settleRejected(item, errors.internal(['the fairness policy failed while admitting'], OUTCOME), now)
      return
    }
    const reservation = reserved ?? this.#reserve(item, placement)
    this.#report.notifyCapacity(this.#capacity, 'onAdmitted', item.ticket, placement)
    this.#prediction.noteAdmitted(item.needTokens, now, backlog)
    const waitedMs = now - item.enqueuedAtMs
    if (item.predictedWaitMs !== undefined) {
      this.#prediction.check('admitted', item.needBucket, item.predictedWaitMs, waitedMs)
    }
    const admission = new AdmittedRequest(this.#host, policy, item.ticket, item.request, {
      backendId: placement.backendId,
      reservation,
      waitedMs,
    })
    this.#report.emit({
      kind: 'admitted',
      id: item.ticket.id,
      user: item.ticket.user.name,
      model: item.ticket.model,
      waitedMs,
      backendId: placement.backendId,
    })
    item.resolve(admission)
  }

  #settleConfirmation(item: QueueItem, placement: Placement, reservation: Reservation, verdict: ConfirmVerdict): void {
    item.confirming = false
    const now = this.#clock.now()
    if (!item.queued) {
      // It left the queue while being confirmed (deadline, client gone, shutdown): it was never admitted.
      reservation.release('abandoned')
      return
    }
    if (verdict.confirmed) {
      this.#admitNow(item, placement, now, reservation)
    } else {
      reservation.release('refused')
      noteRefusal(item, verdict, now, this.#confirmer?.epoch(), this.#policy.rateLimits(item.ticket.user, now))
    }
    // The user's next request was waiting behind this one, and a refusal may leave room for another user.
    this.#dispatcher.schedule()
  }

  reject(item: QueueItem, error: KvgateError, now: number, retryAfterMs?: number): void {
    this.#remove(item, now)
    this.#settleRejected(item, error, now, retryAfterMs)
  }

  readonly #host = {
    nowMs: () => this.#clock.now(),
    noteFirstToken: (promptTokens: number, afterAdmissionMs: number) => this.#ttft.note(promptTokens, afterAdmissionMs),
    emit: (event: AdmissionEvent) => this.#report.emit(event),
    scheduleDispatch: () => this.#dispatcher.schedule(),
    released: (ticket: AdmissionTicket) => this.#report.notifyCapacity(this.#capacity, 'onFinished', ticket),
  }

  #unlink(item: QueueItem, now: number): void {
    this.#prediction.noteDeparted(item.needTokens)
    const wasHead = item.userQueue.head === item
    if (this.#store.unlink(item)) this.#prediction.setKvBound(false, now)
    // After unlink the queue's head is the next request, if any.
    if (wasHead) this.#confirmer?.noteHead(item.ticket.user, item.userQueue.head?.needTokens)
  }

  /** Left the queue without admission: the policy forgets it. */
  #remove(item: QueueItem, now: number): void {
    this.#unlink(item, now)
    this.#policy.onRemove(item.request, now)
  }

  #settleRejected(item: QueueItem, error: KvgateError, now: number, retryAfterMs?: number): void {
    this.#report.emitEnding(item.ticket, now - item.enqueuedAtMs, error, retryAfterMs)
    item.reject(error)
  }

  #cancel(item: QueueItem): void {
    if (!item.queued) return
    const now = this.#clock.now()
    this.reject(item, errors.requestCancelled(['waited for admission'], OUTCOME), now)
    // It may have been the head others were held behind.
    this.dispatch()
  }

  // --- the rest of the contract ---------------------------------------------------------------------------

  dispatch(): void {
    this.#dispatcher.dispatch()
  }

  predictWaitMs(user: PolicyUser, needTokens: number): number {
    const now = this.#clock.now()
    // A would-be request (not queued); its need counted as prompt, which only VTC's charge tells apart.
    return this.#predictRetryMs(
      { id: '', user, promptTokens: needTokens, predictedOutputTokens: 0, enqueuedAtMs: now },
      now,
    )
  }

  rateLimits(user: PolicyUser): RateLimitState {
    return this.#policy.rateLimits(user, this.#clock.now())
  }

  configure(tuning: Partial<AdmissionTuning>): void {
    const next = validateTuning({ ...this.#tuning, ...tuning })
    const tickChanged = next.deadlineTickMs !== this.#tuning.deadlineTickMs
    this.#tuning = next
    if (tickChanged && !this.#closed) this.#sweep.retick(next.deadlineTickMs)
    // Less headroom or a shorter bypass may change what fits or who goes first; more admits nothing new.
    this.dispatch()
  }

  setPolicy(policy: Policy): void {
    const now = this.#clock.now()
    const next = this.#report.guard(policy)
    for (const item of this.#store.inArrivalOrder()) {
      item.quotaDenied = undefined
      if (next.onEnqueue(item.request, now)) continue
      // The new policy cannot order it: answer it now rather than leave it where nobody will pick it.
      this.#unlink(item, now)
      this.#settleRejected(item, errors.internal(['the fairness policy failed'], OUTCOME), now)
    }
    this.#policy = next
    this.dispatch()
  }

  queueDepth(): number {
    return this.#store.depth
  }

  queued(): QueuedInfo[] {
    const now = this.#clock.now()
    return this.#store.inArrivalOrder().map((item) => queuedInfo(item, now))
  }

  queueView(options: QueueViewOptions): QueueView {
    return buildQueueView(this.#store, this.#closed ? undefined : this.#capacity.snapshot(), this.#clock.now(), options)
  }

  stats(): AdmissionStats {
    const rate = this.#prediction.measuredRate()
    return {
      queueDepth: this.#store.depth,
      queuedTokens: this.#store.queuedNeedTokens,
      activeUsers: this.#store.users,
      drainTokensPerSecond: rate === undefined ? undefined : rate * 1_000,
      waitFactors: NEED_BUCKET_LABELS.map((bucket, i) => ({ bucket, ...this.#prediction.factors(i) })),
      ttftAfterAdmissionMs: this.#ttft.estimateMs(1_000),
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#sweep.close()
    const now = this.#clock.now()
    for (const item of this.#store.inArrivalOrder()) this.reject(item, errors.shuttingDown([], OUTCOME), now)
  }
}

export function createAdmissionController(options: AdmissionControllerOptions): AdmissionController {
  return new AdmissionControllerImpl(options)
}
