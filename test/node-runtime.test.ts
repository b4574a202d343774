import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BIN, Cluster, sendVia, status } from './fixtures/cluster'

/** Write `text` to a node's socket, end, and read everything it answers until it closes. */
function writeAndRead(socket: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socket)
    let buf = ''
    s.on('data', (d) => { buf += d })
    s.on('end', () => resolve(buf))
    s.on('error', reject)
    s.end(text)
  })
}

test('node - a method that outlives its methodTimeout yields an error reply, and the node keeps working', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'cli.run', methodArgs: ['sleep 30'], methodTimeout: 1 }])
    assert.is((r.replies[0]!.error as { code: string }).code, 'method_timeout')
    const again = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.match(String(again.replies[0]!.data), /^pong ship1/)
  } finally {
    await c.destroy()
  }
})

test('node - a call the receiver does not allow is denied, and the CLI exits 3', async () => {
  const c = await Cluster.create(['ship1', 'ship2'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    await c.start('ship2')
    // ship2 is not central: by default ship1 lets it deliver replies but not run commands.
    const cli = spawnSync(process.execPath, [BIN, 'send', '--config', c.node('ship2').config, '--to', 'ship1', 'cli.run', '--', 'echo no'], { encoding: 'utf8' })
    assert.is(cli.status, 3, cli.stderr)
    assert.match(cli.stderr, /denied/)
    assert.is(cli.stdout, '')
  } finally {
    await c.destroy()
  }
})

test('node - messages submitted as a raw steward JSON array on the socket are accepted', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const out = await writeAndRead(c.node('central').socket, JSON.stringify([{ toNodes: ['ship1'], method: 'REQCliCommand', methodArgs: ['bash', '-c', 'echo steward'], ACKTimeout: 5, replyMethod: 'REQToFileAppend', directory: 'st', fileName: 'out.txt' }]))
    const acc = (JSON.parse(out.trim()) as { accepted: { id: string }[] }).accepted
    assert.is(acc.length, 1)
    const file = path.join(c.node('central').dataDir, 'st', 'ship1', 'out.txt')
    for (let i = 0; i < 50 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 100))
    assert.is(fs.readFileSync(file, 'utf8'), 'steward\n')
  } finally {
    await c.destroy()
  }
})

test('node - a socket request line that is JSON but not an object (null, a number) gets a clear api_bad_request, and the socket serves on', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    for (const line of ['null', '42', '"status"']) {
      const out = await writeAndRead(c.node('central').socket, line + '\n')
      const answer = JSON.parse(out.trim()) as { error?: { code: string; message: string } }
      assert.is(answer.error?.code, 'api_bad_request', out)
      assert.match(answer.error!.message, /must be a JSON object/)
      assert.not.match(answer.error!.message, /Cannot read properties/)
    }
    assert.ok((await status(c.node('central').socket)).node === 'central', 'the socket still answers')
  } finally {
    await c.destroy()
  }
})

test('node - a second agent on the same data dir refuses to start, and central lists the nodes it heard', async () => {
  const c = await Cluster.create(['ship1'])
  try {
    await c.startHub()
    await c.start('central')
    await c.start('ship1')
    const twin = spawnSync(process.execPath, [BIN, 'agent', '--config', c.node('ship1').config], { encoding: 'utf8', timeout: 15_000 })
    assert.is(twin.status, 1, twin.stderr)
    assert.match(twin.stderr, /locked/)
    let nodes: { name: string; online: boolean }[] = []
    for (let i = 0; i < 40; i++) {
      const r = spawnSync(process.execPath, [BIN, 'nodes', '--json', '--config', c.node('central').config], { encoding: 'utf8' })
      nodes = JSON.parse(r.stdout) as typeof nodes
      if (nodes.some((n) => n.name === 'ship1')) break
      await new Promise((res) => setTimeout(res, 100))
    }
    assert.ok(nodes.find((n) => n.name === 'ship1')?.online, JSON.stringify(nodes))
    // The first ship1 is untouched by its twin.
    const r = await sendVia(c.node('central').socket, [{ toNode: 'ship1', method: 'node.ping' }])
    assert.match(String(r.replies[0]!.data), /^pong ship1/)
  } finally {
    await c.destroy()
  }
})

test.run()
