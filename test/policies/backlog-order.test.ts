import { describe, expect, it } from 'vitest'
import { Backlog } from '../../src/policies/backlog.js'
import type { PolicyUser } from '../../src/policies/index.js'
import { createRequestFactory } from './helpers.js'

const alice: PolicyUser = { name: 'alice', weight: 1 }
const bob: PolicyUser = { name: 'bob', weight: 1 }

describe('Backlog', () => {
  it('keeps each user in arrival order through removals from the front, the middle and the back', () => {
    const request = createRequestFactory()
    const backlog = new Backlog()
    const a = [0, 1, 2, 3, 4].map(() => request(alice, 0))
    const b0 = request(bob, 0)
    expect(backlog.add(a[0]!)).toEqual({
      user: 'alice',
      becameBacklogged: true,
      becameIdle: false,
      head: a[0],
      headSeq: 0,
    })
    expect(backlog.add(b0)).toEqual({ user: 'bob', becameBacklogged: true, becameIdle: false, head: b0, headSeq: 1 })
    for (const r of a.slice(1))
      expect(backlog.add(r)).toMatchObject({ becameBacklogged: false, head: a[0], headSeq: 0 })
    expect(backlog.add(a[1]!)).toBeUndefined() // a duplicate enqueue

    expect(backlog.remove(a[2]!.id)).toMatchObject({ user: 'alice', becameIdle: false, head: a[0], headSeq: 0 }) // middle
    expect(backlog.remove(a[4]!.id)).toMatchObject({ head: a[0] }) // back
    expect(backlog.remove(a[0]!.id)).toMatchObject({ head: a[1], headSeq: 2 }) // front
    expect(backlog.head('alice')).toEqual(expect.objectContaining({ request: a[1], seq: 2 }))
    expect(backlog.remove(a[2]!.id)).toBeUndefined() // already gone
    expect(backlog.remove('never-seen')).toBeUndefined()
    expect(backlog.remove(a[1]!.id)).toMatchObject({ head: a[3], headSeq: 4 })
    expect(backlog.remove(a[3]!.id)).toEqual({
      user: 'alice',
      becameBacklogged: false,
      becameIdle: true,
      head: undefined,
      headSeq: -1,
    })
    expect(backlog.isBacklogged('alice')).toBe(false)
    expect(backlog.head('alice')).toBeUndefined()
    expect([...backlog.backloggedUsers()]).toEqual(['bob'])

    // Back again after going idle: a fresh queue, headed by the new request.
    const again = request(alice, 1)
    expect(backlog.add(again)).toMatchObject({ becameBacklogged: true, head: again, headSeq: 6 })
    expect(backlog.users).toBe(2)
    expect(backlog.has(again.id)).toBe(true)
    expect(backlog.has(a[0]!.id)).toBe(false)
  })

  it('drains one deep user from the front, reading every new head', () => {
    const request = createRequestFactory()
    const backlog = new Backlog()
    const waiting = Array.from({ length: 50_000 }, () => request(alice, 0))
    for (const r of waiting) backlog.add(r)
    for (let i = 0; i < waiting.length - 1; i++) {
      const change = backlog.remove(waiting[i]!.id)
      if (change?.head !== waiting[i + 1]) expect.fail(`after removing ${i} the head is ${change?.head?.id}`)
    }
    expect(backlog.remove(waiting.at(-1)!.id)?.becameIdle).toBe(true)
    expect(backlog.users).toBe(0)
  })
})
