/**
 * A binary min-heap of queued items by deadline that also removes an arbitrary item in O(log n).
 *
 * Deadlines differ per request (a client header may shorten its own), so the per-user FIFO queues are not
 * ordered by deadline and the tick needs its own order. Items leave the heap far more often by admission or
 * client abort than by expiry; the heap libraries on npm (`heap-js`, `@datastructures-js/priority-queue`,
 * `flatqueue`) remove an arbitrary element by a linear search or not at all, and lazy deletion would keep every
 * admitted request's item alive until its deadline passed. So each item carries its own heap index.
 */
export interface HeapItem {
  readonly deadlineAtMs: number
  /** Tie-break so equal deadlines expire in arrival order. */
  readonly seq: number
  /** Position in the heap's array; -1 when not in the heap. */
  heapIndex: number
}

export class DeadlineHeap<T extends HeapItem> {
  readonly #items: T[] = []

  get size(): number {
    return this.#items.length
  }

  peek(): T | undefined {
    return this.#items[0]
  }

  push(item: T): void {
    item.heapIndex = this.#items.length
    this.#items.push(item)
    this.#up(item.heapIndex)
  }

  pop(): T | undefined {
    const top = this.#items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  remove(item: T): boolean {
    const i = item.heapIndex
    if (i < 0 || this.#items[i] !== item) return false
    const last = this.#items.pop() as T
    item.heapIndex = -1
    if (last !== item) {
      this.#items[i] = last
      last.heapIndex = i
      this.#down(i)
      this.#up(last.heapIndex)
    }
    return true
  }

  #less(a: T, b: T): boolean {
    return a.deadlineAtMs < b.deadlineAtMs || (a.deadlineAtMs === b.deadlineAtMs && a.seq < b.seq)
  }

  #swap(i: number, j: number): void {
    const a = this.#items[i] as T
    const b = this.#items[j] as T
    this.#items[i] = b
    this.#items[j] = a
    b.heapIndex = i
    a.heapIndex = j
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.#less(this.#items[i] as T, this.#items[parent] as T)) return
      this.#swap(i, parent)
      i = parent
    }
  }

  #down(i: number): void {
    const n = this.#items.length
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < n && this.#less(this.#items[left] as T, this.#items[smallest] as T)) smallest = left
      if (right < n && this.#less(this.#items[right] as T, this.#items[smallest] as T)) smallest = right
      if (smallest === i) return
      this.#swap(i, smallest)
      i = smallest
    }
  }
}
