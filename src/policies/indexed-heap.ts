/**
 * A binary min-heap of string keys (users) with a numeric priority and a numeric tie-break, where a key's
 * priority can change or the key can leave in O(log n). Policies keep their order of backlogged users here
 * so that a dispatcher decision never costs O(users).
 *
 * Hand-written rather than a dependency: the common heap packages remove by value in O(n) and have no
 * "priority of this key changed" operation, which is the one thing VTC does on every admission.
 */
interface Entry {
  readonly key: string
  priority: number
  tie: number
}

const less = (a: Entry, b: Entry): boolean =>
  a.priority < b.priority || (a.priority === b.priority && (a.tie < b.tie || (a.tie === b.tie && a.key < b.key)))

export class IndexedMinHeap {
  readonly #entries: Entry[] = []
  readonly #index = new Map<string, number>()
  /** Bumped on every mutation, so a lazy ordered walk can notice that the heap moved under it. */
  #version = 0

  get size(): number {
    return this.#entries.length
  }

  has(key: string): boolean {
    return this.#index.has(key)
  }

  priorityOf(key: string): number | undefined {
    const i = this.#index.get(key)
    return i === undefined ? undefined : this.#entries[i]?.priority
  }

  /** The smallest entry's key and priority, or undefined when empty. */
  peek(): { key: string; priority: number } | undefined {
    const top = this.#entries[0]
    return top === undefined ? undefined : { key: top.key, priority: top.priority }
  }

  /** Insert `key`, or move it to its new place if it is already in. */
  set(key: string, priority: number, tie: number): void {
    this.#version++
    const i = this.#index.get(key)
    if (i === undefined) {
      this.#entries.push({ key, priority, tie })
      this.#index.set(key, this.#entries.length - 1)
      this.#up(this.#entries.length - 1)
      return
    }
    const entry = this.#entries[i] as Entry
    entry.priority = priority
    entry.tie = tie
    this.#down(this.#up(i))
  }

  delete(key: string): boolean {
    const i = this.#index.get(key)
    if (i === undefined) return false
    this.#version++
    this.#index.delete(key)
    const last = this.#entries.pop() as Entry
    if (i < this.#entries.length) {
      this.#entries[i] = last
      this.#index.set(last.key, i)
      this.#down(this.#up(i))
    }
    return true
  }

  /**
   * Keys in ascending order, lazily: the k-th key costs O(log k), so a consumer that stops after a few
   * keys pays for a few. The walk keeps a small frontier heap of positions in the main heap (children of
   * what it already yielded). If the heap changes between two steps (the dispatcher admitted someone and
   * kept iterating), the walk restarts from the root and skips keys it has already yielded, so every
   * backlogged key is yielded at most once and the order stays correct for what is left.
   */
  *ascending(): Generator<string, void, undefined> {
    const yielded = new Set<string>()
    for (;;) {
      const version = this.#version
      const frontier: number[] = []
      if (this.#entries.length > 0) frontier.push(0)
      let restarted = false
      while (frontier.length > 0) {
        const i = popFrontier(frontier, this.#entries)
        const entry = this.#entries[i] as Entry
        pushFrontier(frontier, this.#entries, 2 * i + 1)
        pushFrontier(frontier, this.#entries, 2 * i + 2)
        if (yielded.has(entry.key)) continue
        yielded.add(entry.key)
        yield entry.key
        if (this.#version !== version) {
          restarted = true
          break
        }
      }
      if (!restarted) return
    }
  }

  #up(i: number): number {
    const entries = this.#entries
    const entry = entries[i] as Entry
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = entries[parent] as Entry
      if (!less(entry, p)) break
      entries[i] = p
      this.#index.set(p.key, i)
      i = parent
    }
    entries[i] = entry
    this.#index.set(entry.key, i)
    return i
  }

  #down(i: number): void {
    const entries = this.#entries
    const n = entries.length
    const entry = entries[i] as Entry
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && less(entries[right] as Entry, entries[left] as Entry) ? right : left
      const c = entries[child] as Entry
      if (!less(c, entry)) break
      entries[i] = c
      this.#index.set(c.key, i)
      i = child
    }
    entries[i] = entry
    this.#index.set(entry.key, i)
  }
}

// The frontier is itself a tiny binary heap of positions, ordered by the entries they point at.
function pushFrontier(frontier: number[], entries: readonly Entry[], position: number): void {
  if (position >= entries.length) return
  frontier.push(position)
  let i = frontier.length - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!less(entries[frontier[i] as number] as Entry, entries[frontier[parent] as number] as Entry)) break
    ;[frontier[i], frontier[parent]] = [frontier[parent] as number, frontier[i] as number]
    i = parent
  }
}

function popFrontier(frontier: number[], entries: readonly Entry[]): number {
  const top = frontier[0] as number
  const last = frontier.pop() as number
  if (frontier.length > 0) {
    frontier[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= frontier.length) break
      const right = left + 1
      const at = (k: number): Entry => entries[frontier[k] as number] as Entry
      const child = right < frontier.length && less(at(right), at(left)) ? right : left
      if (!less(at(child), at(i))) break
      ;[frontier[i], frontier[child]] = [frontier[child] as number, frontier[i] as number]
      i = child
    }
  }
  return top
}
