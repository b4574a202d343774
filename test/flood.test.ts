/**
 * A flooding peer: one authenticated raw client writes node.ping requests as fast as its socket
 * takes them (reading and ACKing what comes back). The receiver's process must stay within a
 * memory bound (measured from /proc), as backpressure slows the sender down to the receiver's
 * pace: the hub stops reading a sender while its receiver is full (src/hub-flow.ts), a node's
 * tcp transport stops reading while its intake waits for the dispatcher (transports/base.ts).
 * Nothing is lost: every request is refused once (the ACL denies the flooder node.ping). The
 * refusals are summed up in the log instead of a line each, and an unrelated pair goes on.
 * Before (2026-12): 100k pings drove `outpost up`'s process from 70 MB to 835 MB and wrote 100k lines.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import YAML from 'yaml'
import { hashToken } from '../src/hub'
import { Cluster, Proc, freePort, tmpDir } from './fixtures/cluster'
import { flood, rssPeak, type Flood } from './fixtures/flooder'
import { rawPeer, waitFor } from './fixtures/wire-peers'

const COUNT = 100_000
const MIB = 1024 * 1024
/** The process's peak while the flood is taken in (idle: ~70 MB; measured 2026-12 with backpressure: 258 MB a node over tcp, 103 MB the hub; before: 788 MB and 1,130 MB). */
const BOUND = 384 * MIB

/** Every request answered, each by one reply, a refusal. */
async function allRefusedOnce(f: Flood, who: string): Promise<void> {
  await waitFor(() => assert.is(f.answers.size, COUNT, `${who} answered ${f.answers.size} of ${COUNT}`), 120_000)
  for (const [id, a] of f.answers) {
    assert.is(a.replies.size, 1, `${id}: ${a.replies.size} replies`)
    assert.is(a.code, 'denied', id)
  }
}

/** The log's lines and summaries count each refusal once, in a few hundred lines at most. */
async function loggedInSum(proc: Proc): Promise<void> {
  const logged = (): { one: number; summed: number; lines: number } => {
    const lines = proc.output.split('\n')
    const one = lines.filter((l) => /dispatch: refused node\.ping from ship2:/.test(l)).length
    const summed = lines.map((l) => /dispatch: ([\d,]+) more like these from ship2 /.exec(l)?.[1]).filter((n) => n !== undefined).reduce((s, n) => s + Number(n!.replace(/,/g, '')), 0)
    return { one, summed, lines: lines.length }
  }
  // Summaries come every 10 s: wait for the one that counts the last refusals.
  await waitFor(() => assert.is(logged().one + logged().summed, COUNT), 30_000)
  assert.ok(logged().one < 100, `${logged().one} refusals logged one by one`)
  assert.ok(logged().lines < 500, `${logged().lines} log lines`)
}

/** ship3 sends 200 frames to ship4 (raw clients) while the flood goes on: all arrive. */
async function unrelatedPair(port: number, tokens: Record<string, string>): Promise<void> {
  const a = await rawPeer(port, 'ship3', 1, undefined, tokens.ship3)
  const b = await rawPeer(port, 'ship4', 1, undefined, tokens.ship4)
  try {
    for (let i = 0; i < 200; i++) a.send({ t: 'msg', id: `01PAR${String(i).padStart(21, '0')}`, to: 'ship4', b: new Uint8Array([i & 0xff]) })
    await waitFor(() => assert.is(b.frames.filter((f) => f.t === 'msg').length, 200), 30_000)
  } finally {
    a.close()
    b.close()
  }
}

test('flood - 100k pings to the node inside the hub\'s process: its memory stays bounded, each is refused once, the log sums them up, another pair goes on', async () => {
  const dir = tmpDir()
  const port = await freePort()
  const tokens = { ship2: 'tok-ship2', ship3: 'tok-ship3', ship4: 'tok-ship4' }
  const config = path.join(dir, 'hub.yaml')
  fs.writeFileSync(config, YAML.stringify({
    node: { name: 'central' }, dataDir: path.join(dir, 'data'),
    hub: { listen: `127.0.0.1:${port}`, tokens: Object.fromEntries(Object.entries(tokens).map(([n, t]) => [n, hashToken(t)])) },
    transport: { kind: 'tcp', servers: [`tcp://127.0.0.1:${port}`] },
  }))
  const hub = new Proc(['hub', '--config', config])
  let f: Flood | undefined
  let peak: ReturnType<typeof rssPeak> | undefined
  try {
    await hub.waitFor(/api: listening/, 20_000)
    peak = rssPeak(hub.child.pid!)
    f = await flood(port, 'ship2', tokens.ship2, 'central', COUNT)
    await waitFor(() => assert.ok(f!.answers.size > 0))
    await unrelatedPair(port, tokens)
    await allRefusedOnce(f, 'central')
    peak.stop()
    assert.ok(peak.peak() < BOUND, `hub+central peaked at ${Math.round(peak.peak() / MIB)} MB`)
    await loggedInSum(hub)
  } finally {
    peak?.stop()
    f?.close()
    await hub.stop('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('flood - 100k pings to a node connected over tcp: its memory and the hub\'s stay bounded, each is refused once', async () => {
  const c = await Cluster.create(['ship1', 'ship2'], { log: { level: 'info' } })
  let f: Flood | undefined
  let hubPeak: ReturnType<typeof rssPeak> | undefined
  let nodePeak: ReturnType<typeof rssPeak> | undefined
  try {
    const hub = await c.startHub()
    const ship1 = await c.start('ship1')
    hubPeak = rssPeak(hub.child.pid!)
    nodePeak = rssPeak(ship1.child.pid!)
    f = await flood(c.port, 'ship2', c.node('ship2').token, 'ship1', COUNT)
    await allRefusedOnce(f, 'ship1')
    hubPeak.stop()
    nodePeak.stop()
    assert.ok(nodePeak.peak() < BOUND, `ship1 peaked at ${Math.round(nodePeak.peak() / MIB)} MB`)
    assert.ok(hubPeak.peak() < BOUND, `the hub peaked at ${Math.round(hubPeak.peak() / MIB)} MB`)
    await loggedInSum(ship1)
  } finally {
    hubPeak?.stop()
    nodePeak?.stop()
    f?.close()
    await c.destroy()
  }
})

test.run()
