export type { Predictor, PredictorOptions, PredictorStats } from './predictor.js'
export { createPredictor } from './predictor.js'
