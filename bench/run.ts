/**
 * npm run bench [-- NAME...]: one JSON object per line on stdout, then a table on stderr;
 * suites: outbox, tcp, mqtt, nats (brokers: both), agent, fleet, fleet-sim, files, sessions (all when none is named). Each line is
 * {"name", "value", "unit", "baseline", "ratio"}. The baseline is measured in the same run on
 * the same disk; `ratio` is outpost relative to it, higher is better (value/baseline for
 * rates, baseline/value for times). Figures swing run to run: compare ratios.
 */
import { agentBenchmarks } from './agent'
import { brokerBenchmarks } from './brokers'
import { fleetBenchmarks } from './fleet'
import { fleetSimBenchmarks } from './fleet-sim'
import { outboxBenchmarks } from './outbox'
import { filesBenchmarks } from './files'
import { sessionBenchmarks } from './sessions'
import type { BenchResult } from './result'
import { tcpBenchmarks } from './tcp'


const suites: Record<string, () => AsyncIterable<BenchResult>> = {
  outbox: outboxBenchmarks,
  tcp: tcpBenchmarks,
  mqtt: brokerBenchmarks('mqtt'),
  nats: brokerBenchmarks('nats'),
  brokers: async function* () { yield* brokerBenchmarks('nats')(); yield* brokerBenchmarks('mqtt')() },
  agent: agentBenchmarks,
  fleet: fleetBenchmarks,
  'fleet-sim': fleetSimBenchmarks,
  files: filesBenchmarks,
  sessions: sessionBenchmarks,
}

/** The results as a short table for people, on stderr (stdout stays JSON lines). */
function table(results: BenchResult[]): string {
  const fmt = (n: number | null): string => (n === null ? '' : n >= 1000 ? Math.round(n).toLocaleString('en-US') : String(n))
  const rows = results.map((r) => [r.name, `${fmt(r.value)} ${r.unit}`, fmt(r.baseline), fmt(r.ratio)])
  const head = ['figure', 'value', 'baseline', 'ratio']
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  ')
  return [line(head), ...rows.map(line)].join('\n') + '\n'
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a !== '--')
  const unknown = wanted.filter((w) => !(w in suites))
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown suite ${unknown.join(', ')}; suites: ${Object.keys(suites).join(', ')}\n`)
    process.exit(2)
  }
  const results: BenchResult[] = []
  for (const name of wanted.length > 0 ? wanted : Object.keys(suites).filter((s) => s !== 'brokers')) {
    for await (const r of suites[name]!()) {
      results.push(r)
      process.stdout.write(JSON.stringify(r) + '\n')
    }
  }
  process.stderr.write('\n' + table(results))
}

void main()
