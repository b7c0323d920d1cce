import { createManualClock, type Clock, type ManualClock, type TimerHandle } from '../../src/core/index.js'
import type { KvgateError } from '../../src/errors/index.js'
import { createLedger, type Ledger } from '../../src/ledger/index.js'
import {
  createAdmissionController,
  type Admission,
  type AdmissionController,
  type AdmissionControllerOptions,
  type AdmissionEvent,
  type AdmissionTicket,
} from '../../src/admission/index.js'
import { policyFactories, type Policy, type PolicyUser } from '../../src/policies/index.js'

/** A backend as the poller would report it; tests mutate it. */
export interface FakeBackend {
  id: string
  capacityTokens: number
  usedTokens: number
  usable: boolean
  /** The backend's own waiting queue, as polled (the overcommit reads it). */
  waiting?: number
}

/** A promise's outcome, observable synchronously after `settle()`. */
export interface Tracked {
  status: 'pending' | 'admitted' | 'rejected'
  admission: Admission | undefined
  error: KvgateError | undefined
}

export interface Harness {
  clock: ManualClock
  ledger: Ledger
  controller: AdmissionController
  backends: FakeBackend[]
  events: AdmissionEvent[]
  submit(ticket: Partial<AdmissionTicket> & { id: string }): Tracked
  /** What the emulator would report: the started reservations' prompt + generated tokens. */
  pollAll(): void
}

export const fifo = (): Policy => {
  const factory = policyFactories['fifo']
  if (factory === undefined) throw new Error('fifo policy missing')
  return factory({ users: [], options: {} })
}

export const user = (name: string, weight = 1): PolicyUser => ({ name, weight })

/** Let promise reactions run (resolution itself is synchronous inside the dispatcher). */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** A manual clock whose zero-delay timers (the sweep's continuations) the test runs one at a time. */
export function steppedClock() {
  const manual = createManualClock()
  const continuations: (() => void)[] = []
  const clock: Clock = {
    ...manual,
    setTimeout: (fn, ms): TimerHandle => {
      if (ms > 0) return manual.setTimeout(fn, ms)
      continuations.push(fn)
      return {}
    },
  }
  return { manual, clock, continuations }
}

/**
 * A KV-bound backlog: twelve 500-token requests from `who` (ids `${idPrefix}0…11`), one finishing every
 * 500 ms for 4 s, so a 1,000-token backend drains ~1,000 tokens/s and the controller has measured it.
 */
export async function drainBacklog(h: Harness, who: string, idPrefix = who): Promise<Tracked[]> {
  const running = Array.from({ length: 12 }, (_, i) =>
    h.submit({
      id: `${idPrefix}${i}`,
      user: user(who),
      promptTokens: 250,
      predictedOutputTokens: 250,
      deadlineMs: 600_000,
    }),
  )
  await settle()
  for (let i = 0; i < 8; i++) {
    h.clock.advance(500)
    running.find((t) => t.status === 'admitted' && t.admission?.finished === false)?.admission?.finish(250)
    await settle()
  }
  return running
}

export function createHarness(
  overrides: Partial<AdmissionControllerOptions> & { capacities?: number[] } = {},
): Harness {
  const clock = createManualClock()
  const ledger = overrides.ledger ?? createLedger()
  const backends: FakeBackend[] = (overrides.capacities ?? [1_000]).map((capacityTokens, i) => ({
    id: `b${i}`,
    capacityTokens,
    usedTokens: 0,
    usable: true,
  }))
  const events: AdmissionEvent[] = []
  const { capacities: _capacities, ...options } = overrides
  const controller = createAdmissionController({
    clock,
    policy: fifo(),
    ledger,
    backends: () => backends,
    headroomRatio: 0,
    deadlineTickMs: 50,
    maxQueueLength: 100,
    earlyReject: false,
    maxBypassMs: 2_000,
    onEvent: (event) => events.push(event),
    ...options,
  })
  return {
    clock,
    ledger,
    controller,
    backends,
    events,
    submit(partial) {
      const ticket: AdmissionTicket = {
        user: user('alice'),
        model: 'm',
        promptTokens: 100,
        predictedOutputTokens: 100,
        deadlineMs: 1_000,
        ...partial,
      }
      const tracked: Tracked = { status: 'pending', admission: undefined, error: undefined }
      controller.submit(ticket).then(
        (admission) => {
          tracked.status = 'admitted'
          tracked.admission = admission
        },
        (error: unknown) => {
          tracked.status = 'rejected'
          tracked.error = error as KvgateError
        },
      )
      return tracked
    },
    pollAll() {
      for (const backend of backends) {
        const mark = ledger.beginPoll(backend.id)
        let used = 0
        for (const r of ledger.list())
          if (r.backendId === backend.id && r.started) used += r.promptTokens + r.generatedTokens
        backend.usedTokens = used
        ledger.completePoll(mark)
      }
      controller.dispatch()
    },
  }
}
