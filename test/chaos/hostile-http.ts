/**
 * The hostile-input scenarios for the HTTP API (api.http on central), registered by hostile.ts
 * on its cluster while the healthy pair keeps exchanging node.ping through central's socket:
 * generated cases over raw TCP (fuzz-http.ts), slowloris headers, bodies of several GB and
 * without end, and event-stream subscribers that never read.
 */
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { status, type Cluster } from '../fixtures/cluster'
import { type Rnd, carriesOn, rssMb } from './fuzz'
import { UNAUTH_MARK, httpCase, request } from './fuzz-http'
import { hitHttp, parseResponses, verdict } from './http-raw'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** p's value, or undefined once `ms` went by (the timer does not outlive it). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

export interface HttpTarget {
  c: Cluster
  /** central's api.http port and api.token. */
  port: number
  token: string
  traffic: { ok: number; failed: string[] }
}

/** A keep-alive client doing what a tool would (status, a ping to ship1 and its reply) until stopped. */
function healthyClient(t: HttpTarget): { ok: number; failed: string[]; stop(): Promise<void> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const state = { ok: 0, failed: [] as string[], stopped: false }
  const call = (method: string, route: string, body?: string): Promise<{ status: number; text: string }> => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: t.port, method, path: route, agent, headers: { authorization: `Bearer ${t.token}` }, timeout: 30_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${route}: no answer in 30 s`)))
    req.on('error', reject)
    req.end(body)
  })
  const done = (async () => {
    for (let i = 0; !state.stopped; i++) {
      try {
        const r = i % 3 === 2
          ? await call('POST', '/v1/messages?wait=1&timeout=20', JSON.stringify({ toNode: 'ship1', method: 'node.ping' }))
          : await call('GET', '/v1/status')
        const ok = r.status === 200 && (i % 3 !== 2 || (JSON.parse(r.text) as { done?: boolean }).done === true)
        if (ok) state.ok++
        else state.failed.push(`${r.status} ${r.text.slice(0, 200)}`)
      } catch (err) {
        state.failed.push((err as Error).message)
      }
      await sleep(50)
    }
    agent.destroy()
  })()
  return { get ok() { return state.ok }, failed: state.failed, stop: async () => { state.stopped = true; await done } }
}

/** A connection that sends a request's headers a byte a second and never finishes them. */
function slowloris(port: number, head: string): { closed: Promise<{ byServer: boolean; got: string }>; destroy(): void } {
  const sock = net.connect(port, '127.0.0.1')
  let got = ''
  let timer: NodeJS.Timeout | undefined
  sock.setEncoding('latin1')
  sock.on('data', (d: string) => { got += d })
  sock.on('connect', () => {
    sock.write(head)
    timer = setInterval(() => { if (!sock.destroyed) sock.write('a') }, 1000)
  })
  let byUs = false
  const closed = new Promise<{ byServer: boolean; got: string }>((resolve) => {
    const end = (): void => { clearInterval(timer); resolve({ byServer: !byUs, got }) }
    sock.on('close', end)
    sock.on('error', () => {})
  })
  return { closed, destroy: () => { byUs = true; sock.destroy() } }
}

/** GET /v1/events with the token, then never read. */
function deafSubscriber(port: number, token: string): { sock: net.Socket; closed: Promise<void> } {
  const sock = net.connect(port, '127.0.0.1')
  sock.on('connect', () => { sock.write(request('GET', '/v1/events', [['authorization', `Bearer ${token}`]])); sock.pause() })
  sock.on('error', () => {})
  return { sock, closed: new Promise((resolve) => sock.on('close', () => resolve())) }
}

/** Every audit.log* of a node, as one string. */
function auditText(dataDir: string): string {
  return fs.readdirSync(dataDir).filter((f) => f.startsWith('audit.log')).map((f) => fs.readFileSync(path.join(dataDir, f), 'utf8')).join('')
}

export function hostileHttp(target: () => HttpTarget, cases: number, rnd: Rnd): void {
  const deaf: { sock: net.Socket; closed: Promise<void> }[] = []

  test(`hostile - ${cases} random and mutated requests to the HTTP API: no crash, no hang, 401 and nothing else without the token, memory bounded`, async () => {
    const t = target()
    const central = t.c.node('central')
    const pid = central.proc!.child.pid!
    const before = rssMb(pid)
    const okBefore = t.traffic.ok
    const healthy = healthyClient(t)
    // Slowloris: headers that never end, without the token and with it; the headers timeout
    // (10 s) closes them while everyone else is answered.
    const slow = Array.from({ length: 24 }, (_, i) => slowloris(t.port, `GET /v1/status HTTP/1.1\r\nhost: x\r\n${i % 2 === 0 ? `authorization: Bearer ${t.token}\r\n` : ''}x-slow: `))
    for (let i = 0; i < 8; i++) deaf.push(deafSubscriber(t.port, t.token))
    const started = Date.now()
    const kinds = new Map<string, number>()
    const statuses = new Map<number, number>()
    const failures: string[] = []
    let counted = 0
    let connections = 0
    let accepted = 0
    let half = 0
    // 32 connections at a time until `cases` requests (or byte strings) have gone out.
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (counted < cases) {
        const k = httpCase(rnd, t.token)
        counted += k.expect
        connections++
        if (half === 0 && counted >= cases / 2) half = rssMb(pid)
        kinds.set(k.kind, (kinds.get(k.kind) ?? 0) + k.expect)
        const r = await hitHttp(t.port, k, { idleMs: 300, hangMs: 20_000 })
        for (const x of r.responses) {
          statuses.set(x.status, (statuses.get(x.status) ?? 0) + 1)
          if (x.status === 200 || x.status === 202) accepted += (/"accepted":\[(.*?)\]/.exec(x.body.toString())?.[1]?.match(/"id"/g) ?? []).length
        }
        const why = verdict(k, r)
        if (why !== undefined && failures.length < 20) failures.push(`${k.kind}: ${why}; sent ${JSON.stringify(k.bytes.subarray(0, 300).toString('latin1'))}`)
      }
    }))
    const seconds = (Date.now() - started) / 1000
    const after = rssMb(pid)
    // The slowloris connections: all closed by the server, with a 408 at most.
    const slowEnd = await within(Promise.all(slow.map((s) => s.closed)), 60_000)
    for (const s of slow) s.destroy()
    await healthy.stop()
    console.log(`  HTTP API: ${counted} cases on ${connections} connections in ${seconds.toFixed(1)} s, ${accepted} messages accepted, answers ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}, RSS ${before.toFixed(0)} → ${half.toFixed(0)} (half way) → ${after.toFixed(0)} MB, healthy HTTP requests ${healthy.ok}; ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`)
    assert.equal(failures, [], 'every case answered as it should be')
    assert.ok(slowEnd !== undefined, 'the server closed every never-finished header within a minute')
    for (const s of slowEnd) {
      assert.ok(s.byServer, 'closed by the server')
      const { responses } = parseResponses(Buffer.from(s.got, 'latin1'), true)
      assert.ok(responses.every((x) => x.status === 408), `a slowloris connection got ${s.got.slice(0, 200)}`)
    }
    assert.is(central.proc!.child.exitCode, null, 'central is still running')
    assert.is((await status(central.socket)).node, 'central', 'the status socket answers')
    assert.ok(await carriesOn(t.traffic, okBefore), 'the healthy pair exchanges messages during and after the fuzz')
    assert.equal(t.traffic.failed, [], 'no healthy exchange failed')
    assert.ok(healthy.ok > 0, 'the healthy HTTP client was answered during the fuzz')
    assert.equal(healthy.failed, [], 'no request of the healthy HTTP client failed')
    assert.ok(after - half < 60 && after - before < 150, `central RSS ${before.toFixed(0)} → ${half.toFixed(0)} (half way) → ${after.toFixed(0)} MB`)
  })

  test('hostile - HTTP bodies of several GB declared, or chunked without end, are refused before they are buffered', async () => {
    const t = target()
    const pid = t.c.node('central').proc!.child.pid!
    const before = rssMb(pid)
    let peak = before
    /**
     * Send headers, then 1 MiB chunks up to 256 MiB, until an answer comes (then stop sending,
     * as curl does) or the server closes; give up after 60 s.
     */
    const flood = (auth: string, framing: 'length' | 'chunked'): Promise<{ answer: string; sentMb: number; closedByServer: boolean }> => new Promise((resolve) => {
      const sock = net.connect(t.port, '127.0.0.1')
      let got = ''
      let sent = 0
      const chunk = Buffer.alloc(1 << 20, 'x')
      const part = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])
      const limit = setTimeout(() => sock.destroy(), 60_000)
      let byServer = true
      sock.setEncoding('latin1')
      sock.on('data', (d: string) => { got += d })
      sock.on('close', () => { clearTimeout(limit); resolve({ answer: got, sentMb: sent, closedByServer: byServer }) })
      sock.on('error', () => {})
      const pump = (): void => {
        while (sent < 256 && got === '' && !sock.destroyed) {
          sent++
          if (sent % 16 === 0) peak = Math.max(peak, rssMb(pid))
          if (!sock.write(framing === 'chunked' ? part : chunk)) { sock.once('drain', pump); return }
        }
        if (sent >= 256 && got === '') { byServer = false; sock.destroy() }
      }
      sock.on('connect', () => {
        const head: [string, string][] = framing === 'chunked' ? [['transfer-encoding', 'chunked']] : [['content-length', String(8 * 2 ** 30)]]
        sock.write(request('POST', '/v1/messages', [...(auth === '' ? [] : [['authorization', auth] as [string, string]]), ...head]))
        pump()
      })
    })
    for (const framing of ['length', 'chunked'] as const) {
      const right = await flood(`Bearer ${t.token}`, framing)
      const r = parseResponses(Buffer.from(right.answer, 'latin1'), true).responses
      assert.is(r.length, 1, `one answer to an 8 GB ${framing} body: ${right.answer.slice(0, 300)}`)
      assert.is(r[0]!.status, 413)
      assert.match(r[0]!.body.toString(), /"code":"api_too_large"/)
      assert.is(r[0]!.headers.connection, 'close')
      assert.ok(right.closedByServer && right.sentMb < 256, `answered and closed before the body was sent (${right.sentMb} MiB written)`)
      for (const auth of ['', 'Bearer wrong']) {
        const wrong = await flood(auth, framing)
        const w = parseResponses(Buffer.from(wrong.answer, 'latin1'), true).responses
        assert.equal(w.map((x) => x.status), [401], `only a 401 without the token: ${wrong.answer.slice(0, 300)}`)
        assert.ok(wrong.closedByServer && wrong.sentMb < 256, `answered and closed before the body was sent (${wrong.sentMb} MiB written)`)
      }
    }
    const after = rssMb(pid)
    assert.ok(peak - before < 64 && after - before < 64, `central RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} → ${after.toFixed(0)} MB while 8 GB bodies were offered`)
    console.log(`  HTTP API: 8 GB and endless bodies refused, RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} → ${after.toFixed(0)} MB`)
  })

  test('hostile - HTTP event subscribers that never read are cut off past their backlog; a reading one gets every reply; nothing unauthenticated was sent', async () => {
    const t = target()
    const central = t.c.node('central')
    const pid = central.proc!.child.pid!
    const before = rssMb(pid)
    // A reading subscriber, for the replies to 32 commands of 1 MiB of output each.
    const ids = new Set<string>()
    const finals = new Set<string>()
    const sub = http.get({ host: '127.0.0.1', port: t.port, path: '/v1/events', headers: { authorization: `Bearer ${t.token}` } })
    const res = await new Promise<http.IncomingMessage>((resolve) => sub.on('response', resolve))
    assert.is(res.statusCode, 200)
    let buf = ''
    res.setEncoding('utf8')
    res.on('data', (d: string) => {
      buf += d
      let end: number
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const data = buf.slice(0, end).split('\n').find((l) => l.startsWith('data: '))
        buf = buf.slice(end + 2)
        if (data === undefined) continue
        const env = JSON.parse(data.slice(6)) as { inReplyTo?: string; final?: boolean; error?: unknown }
        // Every final reply: an event may come before the POST that caused it has its answer.
        if (env.inReplyTo !== undefined && (env.final === true || env.error !== undefined)) finals.add(env.inReplyTo)
      }
    })
    // One at a time: a reader is allowed 4 MiB behind, and this one keeps up with 1 MiB at once.
    for (let i = 0; i < 32; i++) {
      const post = await fetch(`http://127.0.0.1:${t.port}/v1/messages?wait=1&timeout=60`, { method: 'POST', headers: { authorization: `Bearer ${t.token}` }, body: JSON.stringify({ toNode: 'central', method: 'cli.run', methodArgs: ['head -c 1048576 /dev/zero | tr "\\0" x'], ttl: 120 }) })
      assert.is(post.status, 200)
      for (const a of ((await post.json()) as { accepted: { id: string }[] }).accepted) ids.add(a.id)
    }
    const missing = (): string[] => [...ids].filter((id) => !finals.has(id))
    for (let i = 0; i < 300 && missing().length > 0; i++) await sleep(100)
    assert.equal(missing(), [], 'every final reply came to the reading subscriber')
    sub.destroy()
    // The deaf subscribers opened during the fuzz: 32 MiB of events did not fit their 4 MiB
    // backlog. Reading now drains what the kernel held and shows whether the server hung up.
    for (const d of deaf) d.sock.resume()
    await within(Promise.all(deaf.map((d) => d.closed)), 30_000)
    const cut = deaf.filter((d) => d.sock.destroyed).length
    for (const d of deaf) d.sock.destroy()
    assert.is(cut, deaf.length, `${cut} of ${deaf.length} subscribers that never read were disconnected`)
    assert.match(central.proc!.output, /an event stream client fell too far behind; disconnected/)
    const after = rssMb(pid)
    assert.ok(after - before < 150, `central RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB`)

    // Nothing an unauthenticated request carried was accepted or ran (the healthy pair shows delivery works).
    const r = await sendViaHttpPing(t)
    assert.ok(r, 'a ping over HTTP still gets its reply')
    assert.ok(!auditText(central.dataDir).includes(UNAUTH_MARK), 'no unauthenticated message in central\'s audit log')
    assert.ok(!fs.existsSync(path.join(t.c.node('ship1').dataDir, UNAUTH_MARK)), 'no unauthenticated message ran on ship1')
    assert.is(central.proc!.child.exitCode, null, 'central is still running')
    console.log(`  HTTP API: ${cut} subscribers that never read cut off, a reading one got all ${ids.size} replies of 1 MiB, RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB`)
  })
}

async function sendViaHttpPing(t: HttpTarget): Promise<boolean> {
  const r = await fetch(`http://127.0.0.1:${t.port}/v1/messages?wait=1&timeout=20`, { method: 'POST', headers: { authorization: `Bearer ${t.token}` }, body: JSON.stringify({ toNode: 'ship1', method: 'node.ping' }) })
  return r.status === 200 && ((await r.json()) as { done?: boolean }).done === true
}
