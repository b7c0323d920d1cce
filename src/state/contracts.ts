/**
 * The shared state of several gateway replicas: what every replica must agree on so that, together, they
 * admit no more KV than a backend has, share fairly and count quotas once. Queues stay local to each replica;
 * only the books below are shared. Two implementations, registered by name in `./index.ts` and picked by
 * `state.store` in YAML, run one contract suite (test/state/store-contract.test.ts):
 *
 *   memory  one process's books (several gateways built in one process can share it); on the injected clock
 *   redis   Redis 7 / Valkey, every change one Lua script (atomic), leases as keys with a TTL, wake-ups by pub/sub
 *
 * Every operation is asynchronous (a round trip for redis), and each answer carries the backend's figures
 * after the change, so a replica's cached view follows the shared one without extra reads. The gateway's side
 * (a cached view for the synchronous dispatcher, confirmations, degraded mode) is `shared-admission.ts`.
 */

/** One backend as the shared state has it: the newest completed poll and everyone's outstanding reservations. */
export interface SharedBackendFigures {
  readonly backendId: string
  /** Capacity and usage from the newest completed poll (by any replica); 0/0 before the first. */
  readonly capacityTokens: number
  readonly usedTokens: number
  /** Sequence number of that poll (polls are numbered by the store, in the order they began). */
  readonly pollSeq: number
  /** Bumped by every change to these figures: answers and wake-ups may arrive out of order, the newest wins. */
  readonly version: number
  /** Σ max(0, reserved − visible) of live reservations, per replica that holds them. */
  readonly outstandingByReplica: Readonly<Record<string, number>>
}

/** The fairness gate of a VTC admission: charge the shared counter, and yield to a smaller one elsewhere. */
export interface FairShare {
  readonly weight: number
  readonly wIn: number
  readonly wOut: number
}

/** Quota limits in force for the user now (the policy's own); absent = no limit in that dimension. */
export interface SharedQuota {
  readonly tokensPerMinute?: number
  readonly requestsPerMinute?: number
}

export interface AdmitInput {
  readonly replicaId: string
  readonly backendId: string
  readonly requestId: string
  readonly user: string
  readonly promptTokens: number
  /** prompt + predicted output: what the reservation holds at first. */
  readonly reservedTokens: number
  readonly headroomRatio: number
  readonly fairShare?: FairShare
  readonly quota?: SharedQuota
  /** Wall-clock ms since the epoch, the time of the quota window (replicas' clocks in step, as NTP keeps them). */
  readonly nowMs: number
}

export type AdmitRefusal = 'kv' | 'quota' | 'fairness' | 'no-poll'

export type AdmitResult =
  | { readonly admitted: true; readonly figures: SharedBackendFigures }
  | {
      readonly admitted: false
      readonly reason: AdmitRefusal
      /** For `quota`: when the head may pass the shared window, ms from now. */
      readonly retryAfterMs?: number
      readonly figures?: SharedBackendFigures
    }

/** What a replica tells the store of one of its live reservations (progress, or a full re-sync). */
export interface ReservationProgress {
  readonly requestId: string
  /** What the backend must already hold for it: prompt + generated once started, else 0. */
  readonly heldTokens: number
  /** Grows when the request streams past its prediction. */
  readonly reservedTokens: number
}

/** A live reservation as a replica re-asserts it after the store was lost (restart, failover). */
export interface ReservationRecord extends ReservationProgress {
  readonly backendId: string
  readonly user: string
  readonly promptTokens: number
}

export interface HeartbeatResult {
  /** Replicas whose lease is live, this one included: the N of degraded mode's 1/N. */
  readonly replicas: number
  /** Reservations of replicas whose lease had lapsed, freed by this call. */
  readonly reaped: number
}

export interface FairnessState {
  /** VTC counters per user (weighted service, as charged by admissions and settled by releases). */
  readonly counters: Readonly<Record<string, number>>
  /** Users with a queued head on some replica, and the smallest head need among them. */
  readonly heads: Readonly<Record<string, number>>
}

/** Figures after a change, pushed to every replica: a release, a completed poll, a lapsed lease. */
export type WakeListener = (figures: readonly SharedBackendFigures[]) => void

export interface StoreHealth {
  /** The store answers (always true for memory). */
  readonly up: boolean
  readonly lastError: string | undefined
}

export interface StateStore {
  readonly kind: string
  /**
   * Reserve `reservedTokens` on the backend only if it fits: capacity − used − headroom − everyone's
   * outstanding ≥ reserved; and (fairShare) no user with a smaller counter has a head elsewhere that this
   * admission would leave without room; and (quota) the user's shared sliding minute has room. All or nothing.
   * Idempotent per request id: a second call for a live reservation answers admitted without a second charge.
   */
  admit(input: AdmitInput): Promise<AdmitResult>
  /** Exactly once: true the first time; settles the counter and the quota window with the actual length. */
  release(requestId: string, completionTokens: number, nowMs: number): Promise<boolean>
  /**
   * Before a replica sends `GET /metrics` to a backend: record its reservations' progress, then snapshot what
   * every replica's started reservations hold (the poll will see at least that). Returns the poll's number.
   */
  beginPoll(replicaId: string, backendId: string, progress: readonly ReservationProgress[]): Promise<number>
  /** After the poll parsed: unless a newer poll completed first, its figures and its snapshot take effect. */
  completePoll(
    backendId: string,
    pollSeq: number,
    figures: { capacityTokens: number; usedTokens: number },
  ): Promise<SharedBackendFigures>
  /** Renew this replica's lease (for `leaseMs`) and free the reservations of replicas whose lease lapsed. */
  heartbeat(replicaId: string, leaseMs: number): Promise<HeartbeatResult>
  /**
   * After the store was unreachable: make the store's reservations of this replica exactly `live` (add what it
   * lost, drop what ended meanwhile), without fit checks or charges — those requests are running already.
   */
  resync(replicaId: string, leaseMs: number, live: readonly ReservationRecord[]): Promise<void>
  /**
   * The user's queue head on this replica needs `needTokens` (undefined: its queue emptied). When the user
   * had no head anywhere, its counter is lifted to max(own, smallest counter among users with heads).
   */
  noteHead(replicaId: string, user: string, needTokens: number | undefined): Promise<void>
  figures(): Promise<SharedBackendFigures[]>
  fairness(): Promise<FairnessState>
  /** Tokens and requests charged to the user in the shared sliding minute. */
  quotaUsage(user: string, nowMs: number): Promise<{ tokens: number; requests: number }>
  /** Called with fresh figures after any replica's release, completed poll or reaped lease. */
  onWake(listener: WakeListener): void
  /** The store came back after being unreachable (redis only): the caller re-syncs. */
  onReconnect(listener: () => void): void
  onDown(listener: (error: string) => void): void
  health(): StoreHealth
  close(): Promise<void>
}

export interface StateStoreOptions {
  readonly url: string | null
  readonly keyPrefix: string
  readonly commandTimeoutMs: number
}
