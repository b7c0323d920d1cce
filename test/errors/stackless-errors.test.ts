import { describe, expect, it } from 'vitest'
import { errors, KvgateError } from '../../src/errors/index.js'

describe('errors built without a stack trace', () => {
  it('captureStack: false leaves out the frames and nothing else', () => {
    const headers = { 'retry-after': '3' }
    const withStack = errors.queueFull([7, '3s'], { headers })
    const stackless = errors.queueFull([7, '3s'], { headers, captureStack: false })
    expect(withStack.stack).toMatch(/\n\s+at /)
    expect(stackless.stack ?? '').not.toMatch(/\n\s+at /)
    expect(stackless).toBeInstanceOf(KvgateError)
    expect(stackless.toBody()).toEqual(withStack.toBody())
    expect(stackless.toBody()).toEqual({
      error: {
        message: 'The admission queue is full (7 waiting). Please try again in 3s. (kvgate reason: queue_full)',
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
    })
    expect(stackless.headers).toEqual(headers)
    expect(stackless.statusCode).toBe(429)
  })

  it('restores Error.stackTraceLimit afterwards, even when building the error throws', () => {
    const limit = Error.stackTraceLimit
    errors.shuttingDown([], { captureStack: false })
    expect(Error.stackTraceLimit).toBe(limit)
    // A throwing `cause` getter makes construction itself fail, after the limit was lowered.
    const options = { captureStack: false } as { captureStack: false; cause?: unknown }
    Object.defineProperty(options, 'cause', {
      enumerable: true,
      get() {
        throw new RangeError('no cause')
      },
    })
    expect(() => errors.internal(['boom'], options)).toThrow(RangeError)
    expect(Error.stackTraceLimit).toBe(limit)
    expect(new Error('after').stack).toMatch(/\n\s+at /)
  })
})
