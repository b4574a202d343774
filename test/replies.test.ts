/**
 * Replies as an operator meets them in the first hour (issue 13), with real processes: steward's
 * files as steward runs them, a reply method the requester chose (and only that one) runs,
 * and a reply sink's failure reaches `outpost send` and errors.log.
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decode, encode, type Envelope } from '../src/wire/envelope'
import { encodeFrame, FrameDecoder, type Frame } from '../src/wire/framing'
import { ulid } from '../src/wire/ulid'
import { BIN, Cluster, sendVia } from './fixtures/cluster'
import { eventually, readOr } from './helpers'

function send(c: Cluster, args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [BIN, 'send', '--config', c.node('central').config, ...args], { encoding: 'utf8', timeout: 30_000 })
}

function writeJson(c: Cluster, name: string, value: unknown): string {
  const file = path.join(c.dir, name)
  fs.writeFileSync(file, JSON.stringify(value, null, 2))
  return file
}

/** Run `outpost send` without blocking this process (a raw node must answer meanwhile). */
function sendAsync(c: Cluster, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'send', '--config', c.node('central').config, ...args])
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    p.on('exit', (status) => resolve({ status, stdout, stderr }))
  })
}

/** A raw TCP client logged in at the hub as `node`: what a forger with that node's token can send. */
async function rawNode(c: Cluster, node: string): Promise<{ send(env: Envelope): void; received: Envelope[]; close(): void }> {
  const sock = net.connect({ host: '127.0.0.1', port: c.port })
  const decoder = new FrameDecoder()
  const received: Envelope[] = []
  sock.on('error', () => {})
  const welcome = new Promise<Frame>((resolve) => sock.on('data', (d: Buffer) => {
    for (const f of decoder.push(d)) {
      if (f.t === 'welcome' || f.t === 'error') resolve(f)
      if (f.t === 'msg') received.push(decode(f.b))
    }
  }))
  await new Promise((resolve) => sock.once('connect', resolve))
  // apiVersion 1: one msg frame per envelope, no batches.
  sock.write(encodeFrame({ t: 'hello', node, token: c.node(node).token, version: '0.0.0', apiVersion: 1 }))
  const f = await welcome
  assert.is(f.t, 'welcome', JSON.stringify(f))
  return {
    send: (env) => { sock.write(encodeFrame({ t: 'msg', id: env.id, to: env.toNode, b: encode(env) })) },
    received,
    close: () => { sock.destroy() },
  }
}

test("replies - steward's file as steward runs it: an absolute directory lands under the data dir, any letter case", async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    // steward's first README example, field names as its users write them.
    const file = writeJson(c, 'msgs.json', [{
      directory: '/var/cli/command_result/', fileName: 'some-file-name.result', toNodes: ['ship1'],
      method: 'REQCliCommand', methodArgs: ['bash', '-c', 'echo from steward'], replyMethod: 'REQToFileAppend',
      ACKTimeout: 5, retries: 3, replyACKTimeout: 5, replyRetries: 3, methodTimeout: 10, replyMethodTimeOut: 10,
    }])
    const r = send(c, ['--file', file])
    assert.is(r.status, 0, r.stderr)
    assert.is(r.stdout, 'from steward\n')
    const central = c.node('central').dataDir
    assert.is(readOr(path.join(central, 'var', 'cli', 'command_result', 'ship1', 'some-file-name.result')), 'from steward\n')
    assert.not.ok(fs.existsSync('/var/cli/command_result/ship1/some-file-name.result'), 'never outside the data dir')
    // An unknown field is still refused, named, before anything is sent.
    const bad = send(c, ['--file', writeJson(c, 'bad.json', [{ toNode: 'ship1', method: 'REQHello', replyMethodTimeOuts: 1 }])])
    assert.is(bad.status, 2, bad.stderr)
    assert.match(bad.stderr, /unknown field 'replyMethodTimeOuts'/)
  } finally {
    await c.destroy()
  }
})

test('replies - a sink that refuses the reply: send exits non-zero, the client and errors.log are told; [exit N] in the file', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const central = c.node('central').dataDir
    const file = writeJson(c, 'outside.json', [
      { toNode: 'ship1', method: 'cli.run', methodArgs: ['echo one'], directory: '../escape', fileName: 'a.log' },
      { toNode: 'ship1', method: 'cli.run', methodArgs: ['echo two'], directory: 'fine', fileName: 'b.log' },
    ])
    const r = send(c, ['--file', file])
    assert.is(r.status, 1, `exit 1: a message ended in an error\n${r.stderr}`)
    assert.match(r.stdout, /one\n/)
    assert.match(r.stderr, /path_outside/)
    assert.is(readOr(path.join(central, 'fine', 'ship1', 'b.log')), 'two\n')
    assert.not.ok(fs.existsSync(path.join(c.dir, 'escape')))
    await eventually('path_outside in errors.log', () => (/ central path_outside .*reply\.file\.append/.test(readOr(path.join(central, 'errors.log'))) ? true : undefined))

    // A full disk (a /dev/full node where the reply file goes, where root may make one).
    fs.mkdirSync(path.join(central, 'full', 'ship1'), { recursive: true })
    if (spawnSync('mknod', [path.join(central, 'full', 'ship1', 'x.log'), 'c', '1', '7']).status === 0) {
      const full = send(c, ['--file', writeJson(c, 'full.json', [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo lost'], directory: 'full', fileName: 'x.log' }])])
      assert.is(full.status, 1, full.stderr)
      assert.match(full.stderr, /disk_full/)
      await eventually('disk_full in errors.log', () => (/ central disk_full /.test(readOr(path.join(central, 'errors.log'))) ? true : undefined))
    }

    const exit4 = send(c, ['--to', 'ship1', '--reply-method', 'reply.file', 'cli.run', '--', 'echo partial; exit 4'])
    assert.is(exit4.status, 1, exit4.stderr)
    const id = /accepted (\w+)/.exec(exit4.stderr)![1]!
    assert.is(readOr(path.join(central, 'replies', 'ship1', `${id}.log`)), 'partial\n[exit 4]\n')
  } finally {
    await c.destroy()
  }
})

test('replies - the reply method central asked for runs on central, also after central restarts; methods.allow is not asked', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    const proc = await c.start('central')
    await c.start('ship1')
    const central = c.node('central').dataDir
    const chained = path.join(central, 'chained.txt')
    // steward's chaining example: the reply's data becomes the argument of a command run on central.
    const msg = (tag: string): unknown => ({
      toNode: 'ship1', method: 'REQCliCommand', methodArgs: ['bash', '-c', `echo ${tag}`],
      replyMethod: 'REQCliCommand', replyMethodArgs: ['bash', '-c', `echo "got {{STEWARD_DATA}}" >> ${chained}`],
    })
    const r = send(c, ['--file', writeJson(c, 'chain.json', [msg('first')])])
    assert.is(r.status, 0, r.stderr)
    assert.match(readOr(chained), /got first/, 'the final reply reaches send once its reply method ran')
    assert.not.match(proc.output, /denied/)

    // The request waits for ship1 while central is killed and started again: its record is durable.
    await c.node('ship1').proc!.stop('SIGKILL')
    const later = send(c, ['--no-wait', '--file', writeJson(c, 'chain2.json', [msg('second')])])
    assert.is(later.status, 0, later.stderr)
    await proc.stop('SIGKILL')
    await c.start('central')
    await c.start('ship1')
    await eventually('the chained command after the restart', () => (/got second/.test(readOr(chained)) ? true : undefined), 20_000)
  } finally {
    await c.destroy()
  }
})

test('replies - a forged reply runs nothing: another node, an id never sent, a reply method the request did not name', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    await c.startHub()
    const proc = await c.start('central')
    await c.start('ship1')
    const central = c.node('central').dataDir
    const real = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['echo real'] }])
    const realId = real.accepted[0]!.id
    assert.is(real.replies[0]!.data, 'real\n')
    await c.node('ship1').proc!.stop()

    const forged = (from: string, inReplyTo: string, method: string, tag: string): Envelope => ({
      id: ulid(), toNode: 'central', fromNode: from, method, inReplyTo, final: true, createdAt: Date.now(), ackTimeout: 5,
      methodArgs: [`touch ${path.join(central, `forged-${tag}`)}`], data: 'forged\n', directory: 'forged', fileName: `${tag}.log`,
    })
    const from = proc.output.length
    const ship2 = await rawNode(c, 'ship2')
    ship2.send(forged('ship2', realId, 'cli.run', 'other-node'))
    ship2.send(forged('ship2', ulid(), 'cli.run', 'never-sent'))
    ship2.send(forged('ship2', ulid(), 'reply.file', 'never-sent-file'))
    ship2.close()
    // ship1's own connection, but a reply method its request (reply.file.append) did not name.
    const ship1 = await rawNode(c, 'ship1')
    ship1.send(forged('ship1', realId, 'cli.run', 'wrong-method'))
    await proc.waitFor(/refused reply[^\n]*from ship1 to/, 10_000, from)
    ship1.close()
    await proc.waitFor(/(refused reply[\s\S]*){4}/, 10_000, from)
    const denials = (): number => (readOr(path.join(central, 'errors.log')).match(/ central denied .*refused reply/g) ?? []).length
    await eventually('four denials in errors.log', () => (denials() >= 4 ? true : undefined), 30_000)
    await new Promise((r) => setTimeout(r, 500))
    assert.is(denials(), 4, readOr(path.join(central, 'errors.log')))
    assert.equal(fs.readdirSync(central).filter((f) => f.startsWith('forged')), [], 'nothing ran, nothing was written')
  } finally {
    await c.destroy()
  }
})

test('replies - a reply from the right node naming a reply method its request did not name: the waiting send gets denied, exit 3', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    const proc = await c.start('central')
    const central = c.node('central').dataDir
    const ship1 = await rawNode(c, 'ship1')
    const waiting = sendAsync(c, ['--to', 'ship1', 'cli.run', '--', 'echo x'])
    const req = await eventually('the request at ship1', () => ship1.received.find((e) => e.method === 'cli.run'))
    ship1.send({ id: ulid(), toNode: 'central', fromNode: 'ship1', method: 'cli.run', methodArgs: [`touch ${path.join(central, 'forged')}`], inReplyTo: req.id, final: true, data: 'x\n', createdAt: Date.now(), ackTimeout: 5 })
    const r = await waiting
    ship1.close()
    assert.is(r.status, 3, r.stderr)
    assert.match(r.stderr, /denied: central refused reply .* naming the reply method cli\.run/)
    assert.is(r.stdout, '', 'none of the refused reply is shown')
    assert.not.ok(fs.existsSync(path.join(central, 'forged')))
    await proc.waitFor(/refused reply/)
  } finally {
    await c.destroy()
  }
})

test.run()
