/**
 * An intrusive doubly linked list: the nodes carry their own `prev`/`next`, so a queue can append, read its
 * head and remove any node in O(1) without allocating. Per-user waiting queues use it (the admission
 * queue's items and the policies' backlog mirror): a `Map` read from the front is O(deleted so far) in V8.
 */
export interface ListNode<T> {
  prev: T | undefined
  next: T | undefined
}

export interface LinkedList<T> {
  head: T | undefined
  tail: T | undefined
}

export function appendNode<T extends ListNode<T>>(list: LinkedList<T>, node: T): void {
  node.prev = list.tail
  node.next = undefined
  if (list.tail === undefined) list.head = node
  else list.tail.next = node
  list.tail = node
}

export function unlinkNode<T extends ListNode<T>>(list: LinkedList<T>, node: T): void {
  if (node.prev === undefined) list.head = node.next
  else node.prev.next = node.next
  if (node.next === undefined) list.tail = node.prev
  else node.next.prev = node.prev
  node.prev = undefined
  node.next = undefined
}
