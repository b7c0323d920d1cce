export type {
  ObservationDetails,
  Predictor,
  PredictorOptions,
  PredictorSnapshot,
  PredictorStats,
} from './predictor.js'
export { createPredictor, DEFAULT_USER_MIN_SAMPLES, DEFAULT_USER_WINDOW_SIZE } from './predictor.js'
export { keepPredictorState, type KeptPredictorState, loadPredictorState, savePredictorState } from './state-file.js'
