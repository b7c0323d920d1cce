import type { ChatMessage } from '../tokens/index.js'
import { assistantMessage, hashBlockText, syntheticText, userContentTokens, userMessage } from './prompts.js'
import { RequestSender } from './request-sender.js'
import type { RunOptions, RunResult } from './runner.js'
import { createAgent, DEFAULT_USER, resolveModel } from './runner.js'
import type { TraceRequest } from './workload.js'

/** History of one conversation in a replayed trace: per round, the user turn and the answer once known. */
interface RoundHistory {
  user: string
  answer?: string
  outputTokens: number
}

/**
 * Open-loop replay: each request is sent at its arrival time whatever is still in flight, as the trace's
 * users sent them (with `maxConcurrency`, a request due while that many are in flight waits for a slot, as
 * `vllm bench serve` does). Rounds of a conversation carry the earlier rounds as history: the real answer
 * when it has arrived, else text of the recorded answer length, so the prompt length is the trace's either way.
 */
export async function runTrace(requests: readonly TraceRequest[], options: RunOptions): Promise<RunResult> {
  const agent = createAgent(Math.max(16, Math.min(1024, options.maxConcurrency ?? 1024)))
  const startedAtWallMs = options.clock.wallNow()
  try {
    const model = await resolveModel(options.baseUrl, agent, options.model, options.headers)
    let schedule = [...requests]
    if (options.maxNumRequests !== undefined) schedule = schedule.slice(0, options.maxNumRequests)
    if (options.durationMs !== undefined)
      schedule = schedule.filter((r) => r.arrivalMs <= (options.durationMs as number))
    options.onTotal?.(schedule.length)
    const origin = options.clock.now()
    const sender = new RequestSender(options, agent, origin)
    sender.model = model
    const histories = new Map<string, RoundHistory[]>()

    const sendOne = async (request: TraceRequest, position: number): Promise<void> => {
      const user = request.user ?? DEFAULT_USER
      let messages: ChatMessage[]
      if (request.conversationId !== undefined) {
        const history = histories.get(request.conversationId) ?? []
        histories.set(request.conversationId, history)
        const round = request.round ?? history.length
        messages = []
        for (let r = 0; r < round; r++) {
          const past = history[r]
          if (past === undefined) continue // a round cut from the trace: its turn is simply absent
          messages.push(userMessage(past.user))
          messages.push(
            assistantMessage(
              past.answer ?? syntheticText(past.outputTokens, options.seed, request.conversationId, r, 'answer'),
            ),
          )
        }
        const content = syntheticText(
          userContentTokens(request.inputTokens),
          options.seed,
          request.conversationId,
          round,
          'user',
        )
        messages.push(userMessage(content))
        history[round] = { user: content, outputTokens: request.outputTokens }
      } else if (request.hashIds !== undefined) {
        messages = [userMessage(hashBlockText(userContentTokens(request.inputTokens), request.hashIds))]
      } else {
        messages = [
          userMessage(syntheticText(userContentTokens(request.inputTokens), options.seed, 'request', position)),
        ]
      }
      const { outcome } = await sender.send(messages, request.outputTokens, user, request.arrivalMs, {
        ...(request.conversationId !== undefined ? { conversationId: request.conversationId } : {}),
        ...(request.round !== undefined ? { round: request.round } : {}),
      })
      if (outcome.kind === 'completed' && request.conversationId !== undefined) {
        const entry = histories.get(request.conversationId)?.[request.round ?? 0]
        if (entry !== undefined) entry.answer = outcome.text
      }
    }

    const inFlight: Promise<void>[] = []
    await new Promise<void>((resolve) => {
      let next = 0
      const tick = (): void => {
        // Send everything due now, then sleep until the next arrival.
        while (next < schedule.length && (schedule[next] as TraceRequest).arrivalMs <= sender.elapsed()) {
          inFlight.push(sendOne(schedule[next] as TraceRequest, next))
          next++
        }
        if (next >= schedule.length) {
          resolve()
          return
        }
        options.clock.setTimeout(tick, Math.max(0, (schedule[next] as TraceRequest).arrivalMs - sender.elapsed()))
      }
      tick()
    })
    await Promise.all(inFlight)
    return { records: sender.records, startedAtWallMs, runtimeMs: sender.elapsed(), model }
  } finally {
    await agent.close()
  }
}
