/**
 * Rolling coverage and over-reservation figures over the same number of requests as the quantile's window:
 * per request, whether the answer fitted in what was predicted, and how much of the prediction went unused.
 */
export class CoverageWindow {
  readonly #covered: Uint8Array
  readonly #overTokens: Float64Array
  readonly #predictedTokens: Float64Array
  #next = 0
  #size = 0
  coveredCount = 0
  overSum = 0
  predictedSum = 0

  constructor(capacity: number) {
    this.#covered = new Uint8Array(capacity)
    this.#overTokens = new Float64Array(capacity)
    this.#predictedTokens = new Float64Array(capacity)
  }

  get size(): number {
    return this.#size
  }

  push(predicted: number, actual: number): void {
    const i = this.#next
    if (this.#size === this.#covered.length) {
      this.coveredCount -= this.#covered[i] as number
      this.overSum -= this.#overTokens[i] as number
      this.predictedSum -= this.#predictedTokens[i] as number
    } else {
      this.#size++
    }
    const covered = actual <= predicted ? 1 : 0
    const over = Math.max(0, predicted - actual)
    this.#covered[i] = covered
    this.#overTokens[i] = over
    this.#predictedTokens[i] = predicted
    this.coveredCount += covered
    this.overSum += over
    this.predictedSum += predicted
    this.#next = (i + 1) % this.#covered.length
  }
}
