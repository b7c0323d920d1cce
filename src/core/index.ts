export type { Clock, TimerHandle, ManualClock } from './clock.js'
export { createSystemClock, createManualClock, createScaledClock } from './clock.js'
export type { Random } from './random.js'
export { createSeededRandom, randomInt, randomNormal } from './random.js'
export type { LinkedList, ListNode } from './linked-list.js'
export { appendNode, unlinkNode } from './linked-list.js'
export type { ErrorObject, ValidateFunction, ValidationProblem } from './validation.js'
export {
  atLeast,
  atMost,
  check,
  compile,
  compileRequestSchema,
  differentFrom,
  formatErrors,
  formatProblem,
  greaterThan,
  nullable,
  REDACTED,
  redactSecrets,
  secretValues,
  validationProblems,
  when,
} from './validation.js'
export type { HeapNode } from './indexed-heap.js'
export { IndexedHeap, IndexedMinHeap } from './indexed-heap.js'
export type { SseEventHandler, SseParser } from './sse.js'
export { createSseParser, parseSseData, sseData } from './sse.js'
export type { Watchdog } from './watchdog.js'
export { clockTimeoutSignal, createWatchdog } from './watchdog.js'
export type { VllmRoute } from './vllm-routes.js'
export {
  allowListCovers,
  KVGATE_PUBLIC_PATHS,
  ROUTED_PATHS,
  VLLM_ADMIN_PATHS,
  VLLM_GENERATING_PATHS,
  VLLM_READ_ONLY_ROUTES,
} from './vllm-routes.js'
