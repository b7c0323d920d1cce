import type { ConversationRunOptions, ConversationRunResult, ConversationSampling, StopRule } from './closed-loop.js'
import { runConversations } from './closed-loop.js'
import { runTrace } from './open-loop.js'
import type { RunOptions, RunResult } from './runner.js'
import type { Conversation, TraceRequest, Workload } from './workload.js'

export interface RunWorkloadOptions extends RunOptions {
  /** Closed loop: clients that each wait for an answer before sending again. Traces replay open-loop without it. */
  numClients?: number
  maxActiveConversations?: number
  /** Per-client Poisson rate for closed-loop runs. */
  clientRequestRate?: number
  stopRule?: StopRule
  conversationSampling?: ConversationSampling
  warmupStep?: boolean
}

/**
 * A trace's requests as closed-loop conversations (for `--num-clients` on a trace): rounds of one
 * conversation in order, single requests as one-turn conversations, in order of first arrival. A round's
 * `inputTokens` is its new turn, which is what a conversation turn holds.
 */
export function traceToConversations(requests: readonly TraceRequest[]): Conversation[] {
  const byId = new Map<string, Conversation>()
  const out: Conversation[] = []
  requests.forEach((r, i) => {
    const id = r.conversationId ?? `request-${i}`
    let conversation = byId.get(id)
    if (conversation === undefined) {
      conversation = { id, ...(r.user !== undefined ? { user: r.user } : {}), prefixTokens: 0, turns: [] }
      byId.set(id, conversation)
      out.push(conversation)
    }
    // A user turn's tokens are its content; the trace's length includes the role marker and prompt marker.
    conversation.turns.push({ userTokens: Math.max(0, r.inputTokens - 2), outputTokens: r.outputTokens })
  })
  return out
}

export type WorkloadRunResult = RunResult & {
  mode: 'open-loop' | 'closed-loop'
  abandonedConversations?: number
  unfinishedConversations?: number
  warmup?: ConversationRunResult['warmup']
}

/** Whether a workload with these options runs closed-loop (conversations, or a trace with `--num-clients`). */
export function isClosedLoop(workload: Workload, options: Pick<RunWorkloadOptions, 'numClients'>): boolean {
  return workload.kind === 'conversations' || options.numClients !== undefined
}

export async function runWorkload(workload: Workload, options: RunWorkloadOptions): Promise<WorkloadRunResult> {
  if (!isClosedLoop(workload, options) && workload.kind === 'trace') {
    return { ...(await runTrace(workload.requests, options)), mode: 'open-loop' }
  }
  const conversations = workload.kind === 'trace' ? traceToConversations(workload.requests) : workload.conversations
  const closed: ConversationRunOptions = {
    ...options,
    numClients: options.numClients ?? 1,
    ...(options.maxActiveConversations !== undefined ? { maxActiveConversations: options.maxActiveConversations } : {}),
    ...(options.clientRequestRate !== undefined ? { requestRate: options.clientRequestRate } : {}),
    ...(workload.kind === 'conversations' ? { commonPrefixTokens: workload.commonPrefixTokens } : {}),
  }
  return { ...(await runConversations(conversations, closed)), mode: 'closed-loop' }
}
