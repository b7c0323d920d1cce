import type { AdmissionControllerOptions, AdmissionTuning } from './contracts.js'
import { FINAL_SIZE_RULES } from './room-rules.js'

/**
 * The tuning a controller runs with, checked: a controller built by hand (tests, benchmarks, an embedder)
 * gets the same refusals the config schema gives, and the room rules and the SLO default to off.
 */
export function validateTuning(tuning: AdmissionControllerOptions | AdmissionTuning): AdmissionTuning {
  if (!(tuning.headroomRatio >= 0 && tuning.headroomRatio < 1)) throw new RangeError('headroomRatio must be in [0, 1)')
  if (!(tuning.deadlineTickMs > 0)) throw new RangeError('deadlineTickMs must be > 0')
  if (!(tuning.maxQueueLength >= 0)) throw new RangeError('maxQueueLength must be ≥ 0')
  if (!(tuning.maxBypassMs >= 0)) throw new RangeError('maxBypassMs must be ≥ 0')
  const reserveBy = tuning.reserveBy ?? FINAL_SIZE_RULES.reserveBy
  if (reserveBy !== 'final' && reserveBy !== 'peak') throw new RangeError('reserveBy must be final or peak')
  const { ratio, requests, maxBackendWaiting } = tuning.overcommit ?? FINAL_SIZE_RULES.overcommit
  if (!(ratio >= 0 && ratio <= 1)) throw new RangeError('overcommit.ratio must be in [0, 1]')
  if (!(requests >= 0)) throw new RangeError('overcommit.requests must be ≥ 0')
  if (!(maxBackendWaiting >= 0)) throw new RangeError('overcommit.maxBackendWaiting must be ≥ 0')
  const ttftSloMs = tuning.ttftSloMs ?? null
  if (ttftSloMs !== null && !(ttftSloMs > 0)) throw new RangeError('ttftSloMs must be > 0 or null')
  const { headroomRatio, deadlineTickMs, maxQueueLength, earlyReject, maxBypassMs } = tuning
  return {
    headroomRatio,
    deadlineTickMs,
    maxQueueLength,
    earlyReject,
    maxBypassMs,
    reserveBy,
    overcommit: { ratio, requests, maxBackendWaiting },
    ttftSloMs,
  }
}
