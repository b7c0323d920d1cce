export type { Clock, TimerHandle, ManualClock } from './clock.js'
export { createSystemClock, createManualClock, createScaledClock } from './clock.js'
export type { Random } from './random.js'
export { createSeededRandom, randomInt, randomNormal } from './random.js'
