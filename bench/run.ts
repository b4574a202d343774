/**
 * npm run bench [-- NAME...]: one JSON object per line,
 * {"name", "value", "unit", "baseline", "ratio"}. The baseline is measured in the same run on
 * the same disk; `ratio` is outpost relative to it, higher is better (value/baseline for
 * rates, baseline/value for times). Figures swing run to run: compare ratios.
 */
import { brokerBenchmarks } from './brokers'
import { outboxBenchmarks } from './outbox'
import { tcpBenchmarks } from './tcp'

export interface BenchResult {
  name: string
  value: number
  unit: string
  baseline: number | null
  ratio: number | null
  note?: string
}

const suites: Record<string, () => AsyncIterable<BenchResult>> = {
  outbox: outboxBenchmarks,
  tcp: tcpBenchmarks,
  mqtt: brokerBenchmarks('mqtt'),
  nats: brokerBenchmarks('nats'),
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a !== '--')
  const unknown = wanted.filter((w) => !(w in suites))
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown suite ${unknown.join(', ')}; suites: ${Object.keys(suites).join(', ')}\n`)
    process.exit(2)
  }
  for (const name of wanted.length > 0 ? wanted : Object.keys(suites)) {
    for await (const r of suites[name]!()) process.stdout.write(JSON.stringify(r) + '\n')
  }
}

void main()
