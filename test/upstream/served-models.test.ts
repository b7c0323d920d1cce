import { describe, expect, it } from 'vitest'
import { MAX_MODELS_PER_BACKEND, readModelCards } from '../../src/upstream/index.js'

/** A backend's /v1/models is semi-trusted: read what is a model card, refuse what is not a list. */
describe('reading a backend’s /v1/models', () => {
  it('reads base models and adapters, an adapter inheriting its base model’s context length', () => {
    const cards = readModelCards({
      object: 'list',
      data: [
        { id: 'llama', object: 'model', max_model_len: 8192, root: 'meta/llama', parent: null, permission: [{}] },
        { id: 'llama-sql', object: 'model', max_model_len: null, root: '/adapters/sql', parent: 'llama' },
      ],
    })
    expect(cards?.map((c) => [c.id, c.maxModelLen, c.parent])).toEqual([
      ['llama', 8192, null],
      ['llama-sql', 8192, 'llama'],
    ])
    // Only the card's public fields are passed on in kvgate's own /v1/models.
    expect(cards?.[0]?.card).toEqual({
      id: 'llama',
      object: 'model',
      root: 'meta/llama',
      parent: null,
      max_model_len: 8192,
    })
  })

  it('refuses a body that is not a list, and skips cards without a usable id or length', () => {
    expect(readModelCards('x')).toBeUndefined()
    expect(readModelCards({ data: 'x' })).toBeUndefined()
    const cards = readModelCards({
      data: [null, { id: '' }, { id: 7 }, { id: 'a'.repeat(300) }, { id: 'ok', max_model_len: -1 }, { id: 'ok' }],
    })
    expect(cards?.map((c) => [c.id, c.maxModelLen])).toEqual([['ok', undefined]])
    const many = readModelCards({ data: Array.from({ length: 5000 }, (_, i) => ({ id: `m${i}` })) })
    expect(many).toHaveLength(MAX_MODELS_PER_BACKEND)
  })
})
