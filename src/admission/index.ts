export type {
  Admission,
  AdmissionController,
  AdmissionControllerOptions,
  AdmissionEvent,
  AdmissionOutcome,
  AdmissionStats,
  AdmissionTicket,
  AdmissionTuning,
  BackendCapacity,
  QueuedInfo,
} from './admission-controller.js'
export {
  createAdmissionController,
  MAX_CANDIDATES_PER_DECISION,
  MAX_EXPIRIES_PER_TICK,
} from './admission-controller.js'
export { formatDuration, MAX_RETRY_AFTER_MS, MIN_RETRY_AFTER_MS, rejectionHeaders } from './retry-after.js'
