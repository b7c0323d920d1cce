/**
 * A binary min-heap whose items carry their own position (`heapIndex`), so any item can leave, or move after
 * its priority changed, in O(log n). The admission queue orders its waiting requests by deadline with it and
 * the policies order their backlogged users with it (through `IndexedMinHeap`, keyed by user name).
 *
 * Hand-written rather than a dependency: the heap packages on npm (`heap-js`,
 * `@datastructures-js/priority-queue`, `flatqueue`) remove an arbitrary element by a linear search or not at
 * all and have no "this item's priority changed" operation; lazy deletion would keep every admitted request
 * alive until its deadline passed.
 */
export interface HeapNode {
  /** Position in the heap's array; -1 when not in a heap. Owned by the heap. */
  heapIndex: number
}

export class IndexedHeap<T extends HeapNode> {
  readonly #items: T[] = []
  readonly #less: (a: T, b: T) => boolean
  /** Bumped on every mutation, so a lazy ordered walk notices that the heap moved under it. */
  #version = 0

  /** `less(a, b)`: a strict total order (break ties, e.g. by arrival), or equal items pop in any order. */
  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less
  }

  get size(): number {
    return this.#items.length
  }

  has(item: T): boolean {
    return item.heapIndex >= 0 && this.#items[item.heapIndex] === item
  }

  peek(): T | undefined {
    return this.#items[0]
  }

  push(item: T): void {
    this.#version++
    item.heapIndex = this.#items.length
    this.#items.push(item)
    this.#up(item.heapIndex)
  }

  pop(): T | undefined {
    const top = this.#items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  /** False when `item` was not in this heap (removing twice is a no-op). */
  remove(item: T): boolean {
    if (!this.has(item)) return false
    this.#version++
    const i = item.heapIndex
    const last = this.#items.pop() as T
    item.heapIndex = -1
    if (last !== item) {
      this.#items[i] = last
      last.heapIndex = i
      this.#down(this.#up(i))
    }
    return true
  }

  /** `item`'s priority changed in place: move it to its new position. */
  update(item: T): void {
    if (!this.has(item)) return
    this.#version++
    this.#down(this.#up(item.heapIndex))
  }

  /**
   * Items in ascending order, lazily: the k-th costs O(log k), so a consumer that stops after a few pays for a
   * few. The walk keeps a small frontier heap of positions (children of what it already yielded). If the heap
   * changes between two steps (the dispatcher admitted someone and kept iterating), the walk restarts from
   * the root and skips what it already yielded, so every item is yielded at most once and the order stays
   * right for what is left.
   */
  *ascending(): Generator<T, void, undefined> {
    const yielded = new Set<T>()
    const items = this.#items
    const before = (x: number, y: number): boolean => this.#less(items[x] as T, items[y] as T)
    for (;;) {
      const version = this.#version
      const frontier: number[] = []
      if (items.length > 0) frontier.push(0)
      let restarted = false
      while (frontier.length > 0) {
        const i = popPosition(frontier, before)
        const item = items[i] as T
        pushPosition(frontier, 2 * i + 1, items.length, before)
        pushPosition(frontier, 2 * i + 2, items.length, before)
        if (yielded.has(item)) continue
        yielded.add(item)
        yield item
        if (this.#version !== version) {
          restarted = true
          break
        }
      }
      if (!restarted) return
    }
  }

  /** Sift up from `i`; returns where the item came to rest. */
  #up(i: number): number {
    const items = this.#items
    const item = items[i] as T
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = items[parent] as T
      if (!this.#less(item, p)) break
      items[i] = p
      p.heapIndex = i
      i = parent
    }
    items[i] = item
    item.heapIndex = i
    return i
  }

  #down(i: number): void {
    const items = this.#items
    const n = items.length
    const item = items[i] as T
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && this.#less(items[right] as T, items[left] as T) ? right : left
      const c = items[child] as T
      if (!this.#less(c, item)) break
      items[i] = c
      c.heapIndex = i
      i = child
    }
    items[i] = item
    item.heapIndex = i
  }
}

// The walk's frontier is itself a tiny binary heap of positions, ordered by the items they point at.
function pushPosition(frontier: number[], position: number, size: number, before: (x: number, y: number) => boolean) {
  if (position >= size) return
  frontier.push(position)
  let i = frontier.length - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!before(frontier[i] as number, frontier[parent] as number)) break
    ;[frontier[i], frontier[parent]] = [frontier[parent] as number, frontier[i] as number]
    i = parent
  }
}

function popPosition(frontier: number[], before: (x: number, y: number) => boolean): number {
  const top = frontier[0] as number
  const last = frontier.pop() as number
  if (frontier.length > 0) {
    frontier[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= frontier.length) break
      const right = left + 1
      const child =
        right < frontier.length && before(frontier[right] as number, frontier[left] as number) ? right : left
      if (!before(frontier[child] as number, frontier[i] as number)) break
      ;[frontier[i], frontier[child]] = [frontier[child] as number, frontier[i] as number]
      i = child
    }
  }
  return top
}

interface KeyedEntry extends HeapNode {
  readonly key: string
  priority: number
  tie: number
}

const keyedLess = (a: KeyedEntry, b: KeyedEntry): boolean =>
  a.priority < b.priority || (a.priority === b.priority && (a.tie < b.tie || (a.tie === b.tie && a.key < b.key)))

/**
 * String keys (users) with a numeric priority and a numeric tie-break, ordered by (priority, tie, key): the
 * shape every policy keeps its backlogged users in, so a dispatcher decision never costs O(users).
 */
export class IndexedMinHeap {
  readonly #heap = new IndexedHeap<KeyedEntry>(keyedLess)
  readonly #entries = new Map<string, KeyedEntry>()

  get size(): number {
    return this.#heap.size
  }

  has(key: string): boolean {
    return this.#entries.has(key)
  }

  priorityOf(key: string): number | undefined {
    return this.#entries.get(key)?.priority
  }

  /** The smallest entry's key and priority, or undefined when empty. */
  peek(): { key: string; priority: number } | undefined {
    const top = this.#heap.peek()
    return top === undefined ? undefined : { key: top.key, priority: top.priority }
  }

  /** Insert `key`, or move it to its new place if it is already in. */
  set(key: string, priority: number, tie: number): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) {
      const created: KeyedEntry = { key, priority, tie, heapIndex: -1 }
      this.#entries.set(key, created)
      this.#heap.push(created)
      return
    }
    entry.priority = priority
    entry.tie = tie
    this.#heap.update(entry)
  }

  delete(key: string): boolean {
    const entry = this.#entries.get(key)
    if (entry === undefined) return false
    this.#entries.delete(key)
    this.#heap.remove(entry)
    return true
  }

  /** The keys in no particular order (O(1) to start, O(n) to walk). */
  keys(): IterableIterator<string> {
    return this.#entries.keys()
  }

  /**
   * Keys in ascending order, lazily (see `IndexedHeap.ascending`). Each key at most once per walk, even one
   * that left and came back (a new entry) while the walk was paused.
   */
  *ascending(): Generator<string, void, undefined> {
    const yielded = new Set<string>()
    for (const entry of this.#heap.ascending()) {
      if (yielded.has(entry.key)) continue
      yielded.add(entry.key)
      yield entry.key
    }
  }
}
