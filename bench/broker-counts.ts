/**
 * What bench/brokers.ts counts per round with BENCH_BROKERS_COUNTS=1: the publishes nodes A and
 * B made (nats-server's /connz, by the client name outpost gives its connection; mosquitto keeps
 * no per-client figures, so NaN there) and each node's fdatasync and fsync calls
 * (bench/sync-counter.cjs, preloaded, writes them on SIGUSR2).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { NatsServer, type Broker } from '../test/fixtures/brokers'

/** Publishes by A, by B, by every client; then the syncs (bench/brokers.ts appends them). */
export type Counts = number[]

export async function brokerCounts(broker: Broker, kind: string, _a: number, _b: number): Promise<Counts> {
  if (kind !== 'nats' || !(broker instanceof NatsServer)) return [NaN, NaN, NaN]
  const r = await fetch(`http://127.0.0.1:${broker.monitor}/connz?limit=1000`)
  const conns = ((await r.json()) as { connections: { name?: string; in_msgs: number }[] }).connections
  const of = (node: string): number => conns.filter((c) => c.name?.startsWith(`outpost ${node} `)).reduce((s, c) => s + c.in_msgs, 0)
  return [of('nodeA'), of('nodeB'), conns.reduce((s, c) => s + c.in_msgs, 0)]
}

/** The node's fdatasync and fsync calls so far (0 without the preload). */
export async function nodeSyncs(pid: number): Promise<{ fdatasync: number; fsync: number; fdatasyncMs: number }> {
  const file = path.join(process.env.BENCH_COUNTS_DIR ?? os.tmpdir(), `counts-${pid}.json`)
  fs.rmSync(file, { force: true })
  process.kill(pid, 'SIGUSR2')
  for (let i = 0; i < 100; i++) {
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as { fdatasync: number; fsync: number; fdatasyncMs: number }
    await new Promise((r) => setTimeout(r, 10))
  }
  return { fdatasync: NaN, fsync: NaN, fdatasyncMs: NaN }
}
