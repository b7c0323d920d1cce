export type {
  Admission,
  AdmissionController,
  AdmissionControllerOptions,
  AdmissionEvent,
  AdmissionFault,
  AdmissionStats,
  AdmissionTicket,
  AdmissionTuning,
  AdmissionConfirmer,
  CapacityLimits,
  CapacitySnapshot,
  ConfirmRequest,
  ConfirmVerdict,
  CapacityView,
  Placement,
  QueuedInfo,
  RoutingHints,
} from './contracts.js'
export { createAdmissionController } from './admission-controller.js'
export { backendRoom, createMostRoomView, type MostRoomViewOptions } from './capacity-view.js'
export { MAX_EXPIRIES_PER_TICK } from './deadline-sweep.js'
export { MAX_CANDIDATES_PER_DECISION } from './dispatcher.js'
export {
  extraRoom,
  FINAL_SIZE_RULES,
  type OvercommitRule,
  peakProfile,
  type ReserveBy,
  type RoomRules,
} from './room-rules.js'
export type { WaitCheck, WaitCheckKind } from './wait-prediction.js'
export { NEED_BUCKET_LABELS, type NeedBucket } from './wait-calibration.js'
export {
  formatDuration,
  MAX_RETRY_AFTER_MS,
  MIN_RETRY_AFTER_MS,
  rateLimitHeaders,
  rejectionHeaders,
} from './retry-after.js'
export {
  type QueueView,
  type QueueViewItem,
  type QueueViewOptions,
  type QueueViewUser,
  WAIT_REASONS,
  type WaitReason,
} from './queue-view.js'
