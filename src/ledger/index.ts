export type { Ledger, LedgerOptions, PollMark, Reservation, ReservationInfo } from './ledger.js'
export { createLedger } from './ledger.js'
