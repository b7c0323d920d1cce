import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { Command } from 'commander'
import { parse as parseYaml } from 'yaml'
import { toKvgateError } from '../errors/index.js'
import { routerNames } from '../routing/index.js'
import { createWordPieceTokenCounter } from '../tokens/index.js'
import type { ClientMaxTokens } from './client.js'
import type { CommonFlags } from './cli-options.js'
import {
  addRunOptions,
  addWorkloadOptions,
  benchJson,
  failureLine,
  positiveInteger,
  positiveNumber,
  requestHeaders,
  runOptionsFrom,
  sloSpec,
  userSampleLine,
  workloadOptionsFrom,
} from './cli-options.js'
import type { SetupResult } from './compare.js'
import { DEFAULT_COMPARE_DEADLINE_MS, DIRECT_SETUP, runCompare, setupsBelowDirect } from './compare.js'
import { formatSummary } from './format.js'
import { prepareWorkload } from './prepare-workload.js'
import { createProgress } from './progress.js'
import { fleetSummary, formatComparison, renderReport } from './report.js'
import { parseSlo } from './results.js'
import { createAgent, probeServer } from './runner.js'
import { isClosedLoop } from './run-workload.js'
import { addSimOptions, simOptionsFromCommand, simOptionsGiven } from './sim-options.js'

interface CompareFlags extends CommonFlags {
  url?: string
  policies?: string
  oracle: boolean
  sloAdmission: boolean
  routing?: string
  backends: number
  referenceSingleBackend: boolean
  speed: number
  numGpuBlocks?: number
  deadlineMs: number
  gatewayConfig?: string
  report?: string
  outputJson?: string
  verbose: boolean
}

/** Without --slo, goodput counts requests whose first token came within 2 s (emulated): an interactive bar. */
export const DEFAULT_COMPARE_SLO = 'ttft:2000'
/**
 * compare measures admission, so its clients behave like real ones by default: no `max_tokens`, the answer's
 * length known only to the emulator (out of band), so the gateway has to predict it.
 */
export const DEFAULT_COMPARE_CLIENT_MAX_TOKENS: ClientMaxTokens = 'none'
/** Below this peak KV usage with no preemption, direct never overloaded the emulator and compare says so. */
const OVERLOAD_HINT_KV_USAGE = 0.9

/** One line per finished setup, on stderr whether or not it is a terminal. */
export function setupDoneLine(result: SetupResult): string {
  const s = result.summary
  const vs = result.goodputVsDirect !== undefined ? ` (${result.goodputVsDirect.toFixed(2)}× direct)` : ''
  return `compare: ${result.name} done in ${(result.wallSec ?? 0).toFixed(1)} s: ${s.requests} requests, ${s.completed} completed, 429 ${(s.rate_429 * 100).toFixed(1)}%, failed ${s.failed}, goodput ${s.goodput_rps.toFixed(2)} rps${vs}, preemptions ${result.preemptions}\n`
}

export function createCompareCommand(): Command {
  const compare = new Command('compare').description(
    'run one workload directly against a backend and through kvgate with each policy; print one table, write an HTML report',
  )
  addRunOptions(addWorkloadOptions(compare), DEFAULT_COMPARE_CLIENT_MAX_TOKENS)
    .option('-u, --url <url>', 'an existing backend (vLLM or kvgate sim); default: a fresh emulator per setup')
    .option('--policies <list>', 'kvgate policies to run, comma-separated (default: every registered policy)')
    .option(
      '--oracle',
      'add a setup "oracle": kvgate with the first policy, told each true output length (x-kvgate-output-tokens)',
      false,
    )
    .option(
      '--backends <n>',
      'emulators behind each setup: kvgate in front of all, or for direct a round-robin balancer',
      positiveInteger('--backends'),
      1,
    )
    .option(
      '--routing <list>',
      `kvgate routings, comma-separated: one setup per policy and routing, named policy/routing (${routerNames().join(', ')})`,
    )
    .option(
      '--reference-single-backend',
      'add one emulator with --backends times the blocks, through kvgate with the first policy (the ideal-affinity reference)',
      false,
    )
    .option(
      '--speed <x>',
      'emulated time runs x times faster (emulator, gateway and replay share the clock)',
      positiveNumber('--speed'),
      1,
    )
    .option(
      '--deadline-ms <ms>',
      "kvgate's queue deadline before a 429 (emulated ms)",
      positiveInteger('--deadline-ms'),
      DEFAULT_COMPARE_DEADLINE_MS,
    )
    .option(
      '--gateway-config <file>',
      'YAML merged over the gateway config compare builds (admission, predictor, policy options, users)',
    )
    .option(
      '--slo-admission',
      "let the goodput SLO's ttft drive admission (the gateways' admission.ttftSloMs), not the queue deadline alone",
      false,
    )
    .option('--report <file>', 'write the HTML report here')
    .option('--output-json <file>', "write every setup's figures (summary, per user, per request) and samples as JSON")
    .option('--verbose', "also print each setup's full summary", false)
  // Every `kvgate sim` option (--num-gpu-blocks, --max-model-len, --fault-*, …), for the emulator of each setup.
  const simKeys = addSimOptions(compare)
  compare.action(async (flags: CompareFlags) => {
    if (flags.inputFile === undefined) compare.error('error: kvgate bench compare needs -i/--input-file')
    const routings = listOption(flags.routing)
    const unknownRouting = routings?.find((r) => !routerNames().includes(r))
    if (unknownRouting !== undefined) {
      compare.error(`error: --routing: unknown routing "${unknownRouting}" (valid: ${routerNames().join(', ')})`)
    }
    if (flags.url !== undefined && flags.backends > 1) {
      compare.error('error: --backends runs emulators; it does not combine with --url (an existing backend)')
    }
    try {
      const counter = createWordPieceTokenCounter()
      const workload = await prepareWorkload(
        workloadOptionsFrom(flags, flags.inputFile as string, flags.numClients !== undefined),
        counter,
      )
      if (flags.warmupStep && !isClosedLoop(workload, flags)) {
        process.stderr.write(
          'kvgate bench compare: --warmup-step needs a closed-loop run (a conversation input, or --num-clients)\n',
        )
        process.exitCode = 1
        return
      }
      const sloText = sloSpec(flags) ?? DEFAULT_COMPARE_SLO
      const slo = parseSlo(sloText)
      const sim = simOptionsFromCommand(compare, simKeys)
      if (flags.url !== undefined) {
        if (simOptionsGiven(compare, simKeys)) {
          process.stderr.write('compare: emulator options are ignored with --url (an existing backend)\n')
        }
        const agent = createAgent(1)
        const probe = await probeServer(flags.url, agent, requestHeaders(flags)).finally(() => agent.close())
        if (probe.kind !== 'ok') {
          const why = probe.kind === 'unreachable' ? probe.message : `${probe.status}: ${probe.message}`
          process.stderr.write(`kvgate bench compare: cannot use ${flags.url}: ${why}\n`)
          process.exitCode = 1
          return
        }
      }
      let gatewayConfig =
        flags.gatewayConfig !== undefined
          ? (parseYaml(readFileSync(flags.gatewayConfig, 'utf8')) as Record<string, unknown>)
          : undefined
      if (flags.sloAdmission) {
        if (slo.ttftMs === undefined) {
          process.stderr.write('kvgate bench compare: --slo-admission needs a ttft in --slo\n')
          process.exitCode = 1
          return
        }
        const admission = (gatewayConfig?.['admission'] as Record<string, unknown> | undefined) ?? {}
        gatewayConfig = { ...gatewayConfig, admission: { ...admission, ttftSloMs: Math.round(slo.ttftMs) } }
      }
      let progress: ReturnType<typeof createProgress> | undefined
      const results = await runCompare({
        workload,
        counter,
        seed: flags.seed,
        ...(flags.policies !== undefined ? { policies: listOption(flags.policies) ?? [] } : {}),
        ...(routings !== undefined ? { routings } : {}),
        backends: flags.backends,
        referenceSingleBackend: flags.referenceSingleBackend,
        ...(flags.url !== undefined ? { backendUrl: flags.url } : {}),
        oracle: flags.oracle,
        sim,
        speed: flags.speed,
        deadlineMs: flags.deadlineMs,
        ...(gatewayConfig !== undefined ? { gatewayConfig } : {}),
        slo,
        run: {
          ...runOptionsFrom(flags),
          onTotal: (n) => progress?.onTotal(n),
          onRecord: (r) => progress?.onRecord(r),
        },
        onSetupStart(name) {
          if (!process.stderr.isTTY) process.stderr.write(`compare: running ${name}…\n`)
          progress = createProgress(name.padEnd(12))
        },
        onSetupDone(result: SetupResult) {
          progress?.stop()
          process.stderr.write(setupDoneLine(result))
          if (flags.verbose) process.stdout.write(`\n${result.name}\n${formatSummary(result.summary)}\n`)
        },
      })
      const workloadLine = `${flags.inputFile} (${workload.format}, ${workload.kind === 'trace' ? `${workload.requests.length} requests, open loop` : `${workload.conversations.length} conversations, closed loop`})`
      const setupNotes = [
        flags.url !== undefined
          ? `backend ${flags.url}`
          : `${flags.backends > 1 ? `${flags.backends} fresh emulators per setup (direct: round-robin across them)` : 'a fresh emulator per setup'}${flags.numGpuBlocks ? `, ${flags.numGpuBlocks} KV blocks each` : ''}, speed ${flags.speed}× (times are emulated ms)`,
        `kvgate queue deadline ${flags.deadlineMs} ms${flags.sloAdmission ? ' (or shorter: the SLO drives admission)' : ''}; goodput SLO ${sloText}; TTFT over admitted (completed) requests; clients' max_tokens: ${flags.clientMaxTokens}`,
        ...(workload.userSample !== undefined ? [userSampleLine(workload.userSample, workload.kind)] : []),
      ]
      const below = setupsBelowDirect(results)
      const verdicts = [
        ...(below.length > 0
          ? [
              `below direct's goodput: ${below.map((r) => `${r.name} (${(r.goodputVsDirect as number).toFixed(2)}×)`).join(', ')}`,
            ]
          : []),
        ...overloadHint(results, flags),
      ]
      const notes = [`workload ${workloadLine}`, ...setupNotes]
      process.stdout.write(`${notes.join('\n')}\n\n${formatComparison(results)}\n`)
      if (verdicts.length > 0) process.stdout.write(`\n${verdicts.join('\n')}\n`)
      if (flags.report !== undefined) {
        mkdirSync(dirname(flags.report), { recursive: true })
        writeFileSync(
          flags.report,
          renderReport(results, {
            title: 'kvgate bench compare',
            workload: workloadLine,
            notes: [...setupNotes, ...verdicts],
          }),
        )
        process.stdout.write(`\nreport: ${flags.report}\n`)
      }
      if (flags.outputJson !== undefined) {
        mkdirSync(dirname(flags.outputJson), { recursive: true })
        const json = {
          input_file: flags.inputFile,
          notes,
          setups: results.map((r) => {
            const bench = benchJson(r.run, r.summary, {}) as { summary: object }
            return {
              name: r.name,
              ...(r.policy !== undefined ? { policy: r.policy } : {}),
              backends: r.backends,
              preemptions: r.preemptions,
              max_kv_usage: r.maxKvUsage,
              ...(r.goodputVsDirect !== undefined ? { goodput_vs_direct: r.goodputVsDirect } : {}),
              ...(r.goodputVsOracle !== undefined ? { goodput_vs_oracle: r.goodputVsOracle } : {}),
              ...(r.predictorCoverage !== undefined ? { predictor_coverage: r.predictorCoverage } : {}),
              ...(r.overReservation !== undefined ? { over_reservation: r.overReservation } : {}),
              mean_kv_usage_by_backend: r.meanKvUsageByBackend,
              samples: r.samples,
              ...bench,
              // The fleet figures beside vLLM's: in the summary, so one object holds what a setup is judged by.
              summary: { ...bench.summary, ...fleetSummary(r) },
            }
          }),
        }
        writeFileSync(flags.outputJson, `${JSON.stringify(json, null, 2)}\n`)
      }
      for (const r of results) {
        const failure = failureLine(r.summary, r.run.records)
        if (failure === undefined) continue
        process.stderr.write(`kvgate bench compare: ${r.name}: ${failure}\n`)
        process.exitCode = 1
      }
    } catch (err) {
      process.stderr.write(`kvgate bench compare: ${toKvgateError(err).message}\n`)
      process.exitCode = 1
    }
  })
  return compare
}

/** A comma-separated option as a list; undefined when not given. */
function listOption(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined
  return value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
}

/** When direct never filled the emulator, every setup looks the same; say how the demo overloads it. */
function overloadHint(results: readonly SetupResult[], flags: CompareFlags): string[] {
  const direct = results.find((r) => r.name === DIRECT_SETUP)
  if (flags.url !== undefined || direct === undefined) return []
  if (direct.maxKvUsage >= OVERLOAD_HINT_KV_USAGE || direct.preemptions > 0) return []
  return [
    `direct never overloaded the emulator (KV cache peaked at ${(direct.maxKvUsage * 100).toFixed(0)}%, no preemption), so admission had nothing to do: overload it as npm run demo does (--speed 4 --num-gpu-blocks 400 --deadline-ms 3000) or replay faster (--time-scale 0.5)`,
  ]
}
