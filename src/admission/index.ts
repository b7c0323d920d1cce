export type {
  Admission,
  AdmissionController,
  AdmissionControllerOptions,
  AdmissionEvent,
  AdmissionFault,
  AdmissionStats,
  AdmissionTicket,
  AdmissionTuning,
  CapacitySnapshot,
  CapacityView,
  Placement,
  QueuedInfo,
} from './contracts.js'
export { createAdmissionController } from './admission-controller.js'
export { createMostRoomView, type MostRoomViewOptions } from './capacity-view.js'
export { MAX_EXPIRIES_PER_TICK } from './deadline-sweep.js'
export { MAX_CANDIDATES_PER_DECISION } from './dispatcher.js'
export { formatDuration, MAX_RETRY_AFTER_MS, MIN_RETRY_AFTER_MS, rejectionHeaders } from './retry-after.js'
export {
  type QueueView,
  type QueueViewItem,
  type QueueViewOptions,
  type QueueViewUser,
  WAIT_REASONS,
  type WaitReason,
} from './queue-view.js'
