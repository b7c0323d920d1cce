/**
 * kvgate bench: the load generator. Reads traces (seed 000's conversation trace, BurstGPT, Azure, Mooncake)
 * and conversation inputs (vLLM's generate_conversations JSON, ShareGPT, the built-in multi-user
 * generator), replays them open- or closed-loop against any OpenAI-compatible server, and measures as vLLM's
 * benchmarks do, plus 429s, goodput and per-user fairness. `compare` runs one workload directly and through
 * kvgate with each policy and writes an HTML report.
 */
export type { TraceRequest, Conversation, ConversationTurn, Workload, MalformedRow } from './workload.js'
export type { TraceReader, TraceRowParser, TraceParseOptions, TraceParseResult } from './trace-reader.js'
export { defineTraceReader } from './trace-reader.js'
export { traceReaders, detectTraceReader, parseTrace, parseTraceStream } from './trace-readers.js'
export { loadWorkload, loadWorkloadFile, workloadFormats } from './load-workload.js'
export { prepareWorkload } from './prepare-workload.js'
export type { WorkloadOptions } from './prepare-workload.js'
export { createDistribution } from './distributions.js'
export type { Distribution, DistributionSpec } from './distributions.js'
export { scheduleTrace, gammaArrivalsMs, labelUsers } from './arrivals.js'
export { generateConversations, readShareGpt } from './conversation-inputs.js'
export { generateMultiUserTrace } from './multi-user-generator.js'
export { runTrace } from './open-loop.js'
export { runConversations } from './closed-loop.js'
export type { ConversationRunOptions, ConversationSampling, StopRule } from './closed-loop.js'
export type { RequestRecord, RunOptions, RunResult, On429 } from './runner.js'
export { probeServer } from './runner.js'
export { chatRequestBody, SIM_OUTPUT_TOKENS_FIELD } from './client.js'
export type { ClientMaxTokens } from './client.js'
export { createNumpyRandomState, createPythonRandom } from './mt19937.js'
export { runWorkload, traceToConversations } from './run-workload.js'
export { summarize, parseSlo } from './results.js'
export type { BenchSummary, Slo, UserFigures } from './results.js'
export { describe, quantile, jainIndex, maxMinFairShares, fitZipf } from './statistics.js'
export { formatSummary, recordsToCsv } from './format.js'
export { analyzeWorkload, formatAnalysis } from './analysis.js'
export type { WorkloadAnalysis } from './analysis.js'
export { createBenchCommand } from './command.js'
