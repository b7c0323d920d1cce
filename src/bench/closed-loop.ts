import type { ChatMessage } from '../tokens/index.js'
import { sampleExponential } from './distributions.js'
import { createNumpyRandomState, createPythonRandom } from './mt19937.js'
import { assistantMessage, syntheticText, userMessage } from './prompts.js'
import { RequestSender } from './request-sender.js'
import type { RunOptions, RunResult } from './runner.js'
import { createAgent, DEFAULT_USER, resolveModel, sleep } from './runner.js'
import type { Conversation } from './workload.js'

/**
 * Closed-loop conversations as vLLM's multi-turn bench runs them (`benchmarks/multi_turn/
 * benchmark_serving_multi_turn.py`, `client_main` and `main_mp`): clients share one queue of conversations; each
 * keeps up to `max_active_conversations / num_clients` of them open, sends the next turn of one (round robin or
 * at random), waits for the whole answer, appends it to that conversation's history and goes on. A conversation
 * whose turn was rejected or failed is closed (its later turns would need the missing answer) and counted as
 * abandoned.
 *
 * When the run ends is the stop rule:
 * - `all` (kvgate's default): every conversation runs to its last turn; a client that finds the queue empty
 *   finishes the conversations it holds.
 * - `vllm`: vLLM's rule. A client that asks for a new conversation and finds the queue empty (its end-of-work
 *   signal) quits at once, leaving the conversations it holds unfinished; and as soon as one client quits, every
 *   other client stops after its request in flight (vLLM's early stop, on unless `--no-early-stop`).
 *   `--max-num-requests` is then split per client (⌊N / clients⌋ each), as vLLM splits it.
 */
export type StopRule = 'all' | 'vllm'
export const STOP_RULES: readonly StopRule[] = ['all', 'vllm']
/** vLLM's `--conversation-sampling`: which open conversation a client sends next. */
export type ConversationSampling = 'round_robin' | 'random'
export const CONVERSATION_SAMPLINGS: readonly ConversationSampling[] = ['round_robin', 'random']

export interface ConversationRunOptions extends RunOptions {
  /** Concurrent clients, each sending one request at a time (vLLM's `--num-clients`). */
  numClients: number
  /** Conversations open at once across all clients (vLLM's `--max-active-conversations`). */
  maxActiveConversations?: number
  /** Per-client Poisson rate of requests (vLLM's `--request-rate`); none = back to back. */
  requestRate?: number
  /** Tokens every conversation's first turn starts with. */
  commonPrefixTokens?: number
  stopRule?: StopRule
  conversationSampling?: ConversationSampling
  /**
   * vLLM's `--warmup-step`: first send the first turn of every conversation (one open conversation per client,
   * no early stop) and discard those measurements; the run proper starts at each conversation's second turn,
   * with the warm-up's answer in its history. Conversations whose warm-up turn failed are left out, and so are
   * those with a single turn.
   */
  warmupStep?: boolean
}

export interface ConversationRunResult extends RunResult {
  abandonedConversations: number
  /** Conversations with turns left unsent when the run stopped (the stop rule, a duration or a request cap). */
  unfinishedConversations: number
  warmup?: { requests: number; completed: number; runtimeMs: number }
}

interface ConversationState {
  conversation: Conversation
  messages: ChatMessage[]
  nextTurn: number
  user: string
  abandoned: boolean
}

interface Pass {
  perClient: number
  /** Turns a conversation may send in this pass (the warm-up sends one). */
  maxTurns?: number
  stopRule: StopRule
  sampling: ConversationSampling
  perClientRequests?: number
  totalRequests?: number
  durationMs?: number
  requestRate?: number
}

/** One pass of every client over the shared queue of conversations; returns them in the order they finished. */
async function runPass(
  states: readonly ConversationState[],
  pass: Pass,
  sender: RequestSender,
  options: ConversationRunOptions,
): Promise<ConversationState[]> {
  const finished: ConversationState[] = []
  const commonPrefix = syntheticText(options.commonPrefixTokens ?? 0, options.seed, 'common-prefix')
  let next = 0
  let sent = 0
  let stop = false
  const client = async (clientId: number): Promise<void> => {
    // Each vLLM client process seeds `random` and `np.random` with seed + client_id + 1.
    const python = createPythonRandom(options.seed + clientId + 1)
    const numpy = createNumpyRandomState((options.seed + clientId + 1) >>> 0)
    // vLLM's `active_convs` (a dict, so insertion-ordered) and `conv_id_queue` (a deque: new conversations are
    // appended on the right, the next one is popped from the right, an unfinished one goes back on the left).
    const active = new Set<ConversationState>()
    const roundRobin: ConversationState[] = []
    let queueEmpty = false
    let requests = 0
    for (;;) {
      if (pass.perClientRequests !== undefined && requests >= pass.perClientRequests) break
      if (pass.totalRequests !== undefined && sent >= pass.totalRequests) break
      if (stop || (pass.durationMs !== undefined && sender.elapsed() >= pass.durationMs)) break
      while (active.size < pass.perClient && !queueEmpty) {
        const state = states[next++]
        if (state === undefined) queueEmpty = true
        else if (state.nextTurn < state.conversation.turns.length) {
          active.add(state)
          roundRobin.push(state)
        }
      }
      if (active.size === 0 || (queueEmpty && pass.stopRule === 'vllm')) break
      const current =
        pass.sampling === 'random'
          ? ([...active][python.choiceIndex(active.size)] as ConversationState)
          : (roundRobin.pop() as ConversationState)
      const turn = current.conversation.turns[current.nextTurn]
      if (turn === undefined) continue
      let content =
        turn.userText ?? syntheticText(turn.userTokens, options.seed, current.conversation.id, current.nextTurn, 'user')
      if (current.nextTurn === 0) {
        content =
          commonPrefix +
          syntheticText(current.conversation.prefixTokens, options.seed, current.conversation.id, 'prefix') +
          content
      }
      current.messages.push(userMessage(content))
      sent++
      requests++
      const before = sender.elapsed()
      const { outcome } = await sender.send(
        [...current.messages],
        turn.outputTokens,
        current.user,
        before,
        { conversationId: current.conversation.id, round: current.nextTurn },
        numpy,
      )
      if (outcome.kind === 'completed') {
        current.messages.push(assistantMessage(outcome.text))
        current.nextTurn++
        const lastTurn = Math.min(current.conversation.turns.length, pass.maxTurns ?? Number.POSITIVE_INFINITY)
        if (current.nextTurn >= lastTurn) {
          active.delete(current)
          finished.push(current)
        } else if (pass.sampling === 'round_robin') roundRobin.unshift(current)
      } else {
        current.abandoned = true
        current.messages.pop()
        active.delete(current)
        const at = roundRobin.indexOf(current)
        if (at >= 0) roundRobin.splice(at, 1)
      }
      if (pass.requestRate !== undefined && pass.requestRate > 0) {
        // vLLM sleeps an exponential gap whose mean is the rate's interval less the request's own duration.
        const meanMs = 1000 / pass.requestRate - (sender.elapsed() - before)
        if (meanMs > 0) await sleep(options.clock, sampleExponential(numpy, meanMs))
      }
    }
    if (pass.stopRule === 'vllm') stop = true
  }
  await Promise.all(Array.from({ length: options.numClients }, (_, i) => client(i)))
  return finished
}

export async function runConversations(
  conversations: readonly Conversation[],
  options: ConversationRunOptions,
): Promise<ConversationRunResult> {
  const agent = createAgent(Math.max(16, options.numClients * 2))
  const startedAtWallMs = options.clock.wallNow()
  try {
    const model = await resolveModel(options.baseUrl, agent, options.model, options.headers)
    let states: ConversationState[] = conversations.map((conversation) => ({
      conversation,
      messages: [],
      nextTurn: 0,
      user: conversation.user ?? DEFAULT_USER,
      abandoned: false,
    }))
    const stopRule = options.stopRule ?? 'all'
    const sampling = options.conversationSampling ?? 'round_robin'
    const perClient = Math.max(
      1,
      Math.floor((options.maxActiveConversations ?? options.numClients) / options.numClients),
    )
    let warmup: ConversationRunResult['warmup']
    if (options.warmupStep === true) {
      const { onRecord: _onRecord, ...quiet } = options
      const warmupSender = new RequestSender(quiet, agent, options.clock.now())
      warmupSender.model = model
      // vLLM runs on with the conversations the warm-up returned, in the order they came back (a dict filled as
      // they finished): one whose first turn failed is gone.
      states = await runPass(states, { perClient: 1, maxTurns: 1, stopRule: 'all', sampling }, warmupSender, quiet)
      warmup = {
        requests: warmupSender.records.length,
        completed: warmupSender.records.filter((r) => r.outcome === 'completed').length,
        runtimeMs: warmupSender.elapsed(),
      }
    }
    const remaining = states.reduce((n, s) => n + s.conversation.turns.length - s.nextTurn, 0)
    options.onTotal?.(Math.min(remaining, options.maxNumRequests ?? remaining))
    const sender = new RequestSender(options, agent, options.clock.now())
    sender.model = model
    const abandonedBefore = states.filter((s) => s.abandoned).length
    const pass: Pass = {
      perClient,
      stopRule,
      sampling,
      ...(options.durationMs !== undefined ? { durationMs: options.durationMs } : {}),
      ...(options.requestRate !== undefined ? { requestRate: options.requestRate } : {}),
    }
    if (options.maxNumRequests !== undefined) {
      if (stopRule === 'vllm')
        pass.perClientRequests = Math.max(1, Math.floor(options.maxNumRequests / options.numClients))
      else pass.totalRequests = options.maxNumRequests
    }
    await runPass(states, pass, sender, options)
    return {
      records: sender.records,
      startedAtWallMs,
      runtimeMs: sender.elapsed(),
      model,
      abandonedConversations: states.filter((s) => s.abandoned).length - abandonedBefore,
      unfinishedConversations: states.filter((s) => !s.abandoned && s.nextTurn < s.conversation.turns.length).length,
      ...(warmup !== undefined ? { warmup } : {}),
    }
  } finally {
    await agent.close()
  }
}
