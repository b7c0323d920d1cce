/**
 * The last `capacity` values in arrival order (a ring) and the same values kept sorted, so an exact
 * quantile is one array read.
 *
 * Why not a library: the well-kept quantile sketches on npm (t-digest, DDSketch, `@datadog/sketches-js`) are
 * insert-only — they cannot forget the observation that falls out of a rolling window, and a window is what
 * lets the predictor follow a workload that changes. An exact sorted window of ~1,000 numbers costs one binary
 * search and a `copyWithin` of at most 8 KB per observation, which is cheaper than any sketch at this size.
 */
export class SortedWindow {
  readonly #ring: Float64Array
  readonly #sorted: Float64Array
  #next = 0
  #size = 0

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0))
      throw new RangeError(`window size must be a positive integer, got ${capacity}`)
    this.#ring = new Float64Array(capacity)
    this.#sorted = new Float64Array(capacity)
  }

  get size(): number {
    return this.#size
  }

  /** Adds a value; returns the value that fell out of the window, if one did. */
  push(value: number): number | undefined {
    let evicted: number | undefined
    if (this.#size === this.#ring.length) {
      evicted = this.#ring[this.#next] as number
      this.#removeSorted(evicted)
    } else {
      this.#size++
    }
    this.#ring[this.#next] = value
    this.#next = (this.#next + 1) % this.#ring.length
    this.#insertSorted(value)
    return evicted
  }

  /** The largest value in the window. */
  max(): number | undefined {
    return this.#size === 0 ? undefined : this.#sorted[this.#size - 1]
  }

  /** The window's values, oldest first (what a snapshot keeps, so a restore rebuilds the same ring). */
  values(): number[] {
    const capacity = this.#ring.length
    const start = this.#size === capacity ? this.#next : 0
    const out: number[] = []
    for (let i = 0; i < this.#size; i++) out.push(this.#ring[(start + i) % capacity] as number)
    return out
  }

  /**
   * Nearest-rank quantile (the smallest value with at least `q` of the window at or below it), so a
   * prediction at P90 covers at least 90% of the window — interpolating would give a value no observation
   * had and could cover less.
   */
  quantile(q: number): number | undefined {
    if (this.#size === 0) return undefined
    const rank = Math.min(this.#size, Math.max(1, Math.ceil(q * this.#size)))
    return this.#sorted[rank - 1]
  }

  /** Index of the first sorted element ≥ value among the first `size` elements. */
  #lowerBound(value: number, size: number): number {
    let lo = 0
    let hi = size
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.#sorted[mid] as number) < value) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  #insertSorted(value: number): void {
    // #size already counts the new value; the sorted prefix holds size - 1 values before the insert.
    const used = this.#size - 1
    const at = this.#lowerBound(value, used)
    this.#sorted.copyWithin(at + 1, at, used)
    this.#sorted[at] = value
  }

  #removeSorted(value: number): void {
    const at = this.#lowerBound(value, this.#size)
    this.#sorted.copyWithin(at, at + 1, this.#size)
  }
}
