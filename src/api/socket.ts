/**
 * The local API: a unix socket (mode 0600) taking newline-delimited JSON requests, one JSON
 * object per line back. For steward compatibility, a raw JSON array of messages written and
 * then closed (`nc -U outpost.sock < msgs.json`) is submitted as it is.
 *
 *   {"op":"send","messages":[…],"wait":true}  ─▶ {"accepted":[{id,toNode}]} {"reply":{…}}… {"done":true}
 *     (,"allowUnknown":true: receivers the node list has not heard of are taken too)
 *   {"op":"nodes"}                            ─▶ {"nodes":[…]}
 *   {"op":"status"}                           ─▶ {"node", "version", "connected", "outbox"}
 *   {"op":"session","toNode","method":"session.open"|"tunnel.open"|"tunnel.listen","methodArgs"} ─▶ a live, two-way stream
 *                                                (src/sessions/client.ts): {"in"}/{"out"} lines until {"exit"} or {"error"}
 *   {"op":"config.reload","file":F}          ─▶ {"config":{"node","type":"applied","file","changed","restartNeeded","restartable"}}
 *                                                (or "type":"other-file": this node runs from another file)
 *   {"op":"cp","src","dst",…} / {"op":"transfers"} / {"op":"cp.cancel","id"}  ─▶ file transfers (src/files/api.ts)
 *   {"method":…, …} (a bare message, e.g. BasicAgent's sync.bash) ─▶ as send, to this node by default
 *   anything else                             ─▶ {"error":{"code":"api_bad_request","message"}}
 */
import fs from 'node:fs'
import net from 'node:net'
import { reloadFile } from '../config/remote'
import type { RecentRequests } from './recent'
import { parseMessagesJson, type MessageDraft } from '../wire/envelope'
import { OutpostError, isOutpostError } from '../errors'
import { Lines } from '../lib/lines'
import type { LogFn } from '../log'
import type { OutpostNode } from '../node'
import { checkCopyReceivers, checkReceivers, envelopeJson, parseMessageList, prepareSigned, sendAndWatch, storeSigned, withdrawIds } from '../submit'
import { jobRequest } from '../jobs/requests'
import type { JobRunner } from '../jobs/runner'
import { parseCopy, serveCopy, transferId } from '../files/api'
import { openSession } from '../sessions/client'
import { SOCKET_BUFFER } from '../sessions/channel'

export { envelopeJson }

/** Longest request line (or steward array) in characters: room for a 16 MiB message as JSON. */
export const MAX_REQUEST = 32 * 1024 * 1024

/**
 * One JSON line of a session. An output line ({"out":BASE64}, nearly all of a tunnel's bytes)
 * is put together by hand and written as latin1: base64 needs no escaping, and JSON.stringify
 * plus the UTF-8 encoding of the line were a third of the agent's time in a tunnel download.
 */
function writeLine(sock: net.Socket, obj: unknown): void {
  const out = (obj as { out?: unknown }).out
  if (typeof out === 'string' && Object.keys(obj as object).length === 1) sock.write(`{"out":"${out}"}\n`, 'latin1')
  else sock.write(JSON.stringify(obj) + '\n')
}

/** A session request names its op first: `{"op":"session",…}`. */
const SESSION_LINE = /^\{\s*"op"\s*:\s*"session"/

/** The lines of a connection in session mode: held until the session is open, then handed to it. */
interface SessionLines { line?: (text: string) => void; held?: string[] }

export class SocketApi {
  private readonly server: net.Server
  readonly path: string
  private readonly conns = new Set<net.Socket>()
  /** Jobs made and followed through this socket (job.create, jobs, job, job.cancel). */
  jobs: JobRunner | undefined
  /** The HTTP API's record of recent requests: what is sent here is recorded as accepted (GET /v1/requests, /v1/messages/:id). */
  recent: RecentRequests | undefined

  private constructor(server: net.Server, file: string) {
    this.server = server
    this.path = file
  }

  static async start(node: OutpostNode, file: string, log: LogFn, jobs?: JobRunner, recent?: RecentRequests): Promise<SocketApi> {
    await removeStale(file)
    // Half-open: a steward client writes its array and closes its side, then reads the answer.
    const server = net.createServer({ allowHalfOpen: true })
    const api = new SocketApi(server, file)
    api.jobs = jobs
    api.recent = recent
    server.on('connection', (sock) => api.serve(node, sock, log))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new OutpostError('io', `api: cannot listen on ${file}: ${err.message}`, { cause: err })))
      const old = process.umask(0o177)
      server.listen(file, () => { process.umask(old); resolve() })
    })
    fs.chmodSync(file, 0o600)
    log('info', `api: listening on ${file}`)
    return api
  }

  private serve(node: OutpostNode, sock: net.Socket, log: LogFn): void {
    this.conns.add(sock)
    const cleanups: (() => void)[] = []
    sock.on('close', () => { this.conns.delete(sock); for (const c of cleanups) c() })
    sock.on('error', () => {})
    const lines = new Lines()
    let mode: 'unknown' | 'lines' | 'array' = 'unknown'
    // Requests still answering (a waiting send counts until its `done`). Once the client has
    // closed its side and none is left, we close ours.
    let active = 0
    let clientEnded = false
    const settle = (): void => { if (--active === 0 && clientEnded) sock.end() }
    const write = (obj: unknown): void => { if (!sock.destroyed) sock.write(obj instanceof JsonLine ? obj.text : JSON.stringify(obj) + '\n') }
    const fail = (err: unknown): void => {
      write({ error: isOutpostError(err) ? err.toJSON() : { code: 'api_bad_request', message: (err as Error).message } })
    }
    const run = (work: (finished: () => void) => Promise<void>): void => {
      active++
      let once = false
      const finished = (): void => { if (!once) { once = true; settle() } }
      work(finished).catch((err: unknown) => { fail(err); finished() })
    }
    sock.setEncoding('utf8')
    // A session's connection: its later lines are the session's (src/sessions/client.ts).
    const stream: SessionLines = {}
    let refused = false
    sock.on('data', (chunk: string) => {
      if (refused) return
      if (mode === 'unknown') {
        const first = (lines.rest + chunk).trimStart()[0]
        if (first !== undefined) mode = first === '[' ? 'array' : 'lines'
      }
      if (mode === 'lines') {
        for (const line of lines.push(chunk)) {
          if (stream.line !== undefined) stream.line(line)
          else if (stream.held !== undefined) stream.held.push(line)
          else {
            // Lines after a session request are its input: held (reading paused) until the session is open.
            if (SESSION_LINE.test(line)) { stream.held = []; sock.pause() }
            run((finished) => this.request(node, line, write, fail, cleanups, finished, { sock, stream }))
          }
        }
      } else {
        lines.append(chunk)
      }
      // A request (or a steward array, submitted when the writer closes its side) is bounded:
      // a peer that never sends a newline cannot make this process buffer without end.
      if (lines.rest.length > MAX_REQUEST) {
        fail(new OutpostError('api_bad_request', `api: a request is longer than ${MAX_REQUEST} characters; split the messages into several requests`))
        lines.take()
        refused = true
        sock.end()
      }
    })
    sock.on('end', () => {
      if (refused) return
      // A session's client that closes, even only its writing side, is gone (its input ends
      // with {"eof":true}): the session ends with the connection.
      if (stream.line !== undefined || stream.held !== undefined) { sock.destroy(); return }
      const text = lines.take().trim()
      if (mode === 'array') {
        run(async (finished) => {
          const drafts = parseMessagesJson(text, 'messages')
          checkReceivers(node, drafts, false)
          const { envs, sign } = prepareSigned(node, drafts)
          const sent = await storeSigned(node, envs, sign)
          write({ accepted: sent.map((e) => ({ id: e.id, toNode: e.toNode })) })
          log('info', `api: accepted ${sent.length} messages (steward format)`)
          finished()
        })
      } else if (text !== '') {
        run((finished) => this.request(node, text, write, fail, cleanups, finished))
      }
      clientEnded = true
      if (active === 0) sock.end()
    })
  }

  /** Answer one request line; call `finished` once nothing more will be written for it. */
  private async request(node: OutpostNode, line: string, write: (o: unknown) => void, fail: (e: unknown) => void, cleanups: (() => void)[], finished: () => void, conn?: { sock: net.Socket; stream: SessionLines }): Promise<void> {
    let req: { op?: unknown; messages?: unknown; wait?: unknown; allowUnknown?: unknown; method?: unknown; toNode?: unknown; toNodes?: unknown; file?: unknown }
    try {
      req = JSON.parse(line) as typeof req
    } catch (err) {
      throw new OutpostError('api_bad_request', `api: a request line is not JSON (${(err as Error).message})`)
    }
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      throw new OutpostError('api_bad_request', `api: a request line must be a JSON object like {"op":"status"}, got ${line.length > 40 ? `${line.slice(0, 40)}…` : line}`)
    }
    // A bare message on a line (BasicAgent's {"method":"sync.bash","cmd":…}) is a send to
    // this node, unless it names its receiver, and waits for the reply.
    if (req.op === undefined && typeof req.method === 'string') {
      const message = req.toNode === undefined && req.toNodes === undefined ? { ...req, toNode: node.name } : req
      req = { op: 'send', messages: [message], wait: true }
    }
    if (jobRequest(this.jobs, req as Record<string, unknown>, write, cleanups, finished)) return
    switch (req.op) {
      case 'send': {
        const drafts = parseMessageList(req.messages)
        if (req.allowUnknown !== undefined && typeof req.allowUnknown !== 'boolean') throw new OutpostError('api_bad_request', 'api: allowUnknown must be true or false')
        checkReceivers(node, drafts, req.allowUnknown === true)
        const wait = req.wait !== false
        const { envs, sign } = prepareSigned(node, drafts)
        const stop = await sendAndWatch(node, envs, wait, {
          notice: (n) => write({ notice: n }),
          accepted: (envs) => { this.recent?.add(envs, Date.now()); write(new JsonLine(acceptedLine(envs))) },
          reply: (env) => write({ reply: envelopeJson(env) }),
          delivered: (d) => write({ delivered: d }),
          done: () => { write({ done: true }); finished() },
        }, sign)
        cleanups.push(stop)
        if (!wait) finished()
        return
      }
      case 'cp': {
        const copy = parseCopy(req as Record<string, unknown>)
        checkCopyReceivers(node, [copy.src, copy.dst], req.allowUnknown === true)
        const stop = await serveCopy(node.files, copy, write, finished)
        cleanups.push(stop)
        return
      }
      case 'transfers':
        write({ transfers: node.files.list() })
        break
      case 'withdraw': // messages still in this node's outbox, never sent: taken back (Ctrl-C on outpost send)
        write({ withdraw: Object.fromEntries(await node.delivery.withdraw(withdrawIds((req as Record<string, unknown>).ids))) })
        break
      case 'cp.cancel':
        write({ transfer: await node.files.cancel(transferId((req as Record<string, unknown>).id), 'the local API') })
        break
      case 'session': {
        if (conn === undefined) throw new OutpostError('api_bad_request', 'api: a session needs a connection of its own')
        const { sock, stream } = conn
        const opening = openSession(node, req as Record<string, unknown>, {
          write: (obj) => { if (!sock.destroyed) writeLine(sock, obj); return sock.writableLength < SOCKET_BUFFER },
          drained: () => new Promise((resolve) => { if (sock.destroyed || sock.writableLength < SOCKET_BUFFER) resolve(); else sock.once('drain', () => resolve()) }),
          pause: () => sock.pause(),
          resume: () => sock.resume(),
          end: () => { finished(); sock.end() },
        })
        // A session that cannot open: its error, and the connection ends (its input lines with it).
        const session = await opening.catch((err: unknown) => { fail(err); sock.end(); return undefined })
        if (session === undefined) break
        // The client went away while the session was opening.
        if (sock.destroyed) { session.close(); return }
        stream.line = (text) => session.line(text)
        for (const held of stream.held?.splice(0) ?? []) session.line(held)
        sock.resume()
        cleanups.push(() => session.close())
        return
      }
      case 'check': {
        // Would a send to these nodes be taken (node_unknown, fan_out_too_large)? Nothing is sent.
        const names = (req as Record<string, unknown>).toNodes
        if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n !== '')) throw new OutpostError('api_bad_request', 'api: check needs "toNodes", a list of node names')
        checkReceivers(node, [{ toNodes: names as string[] } as MessageDraft], req.allowUnknown === true)
        write({ ok: true })
        break
      }
      case 'nodes':
        write({ nodes: node.nodes() })
        break
      case 'status':
        write(node.status())
        break
      case 'config.reload': {
        // `outpost config set|unset` on this machine wrote the file: take over what needs no restart.
        if (typeof req.file !== 'string' || req.file === '') throw new OutpostError('api_bad_request', 'api: config.reload needs "file", the config file that was edited')
        write({ config: { node: node.name, ...reloadFile(node.control, req.file), restartable: node.control.canRestart !== false } })
        break
      }
      default:
        fail(new OutpostError('api_bad_request', `api: unknown op ${JSON.stringify(req.op)} (send, session, check, nodes, status, config.reload, cp, cp.cancel, transfers, withdraw)`))
    }
    finished()
  }

  close(): Promise<void> {
    for (const c of this.conns) c.destroy()
    return new Promise((resolve) => this.server.close(() => { fs.rmSync(this.path, { force: true }); resolve() }))
  }
}

/**
 * `{"accepted":[{"id","toNode"},…]}` and a newline, as JSON.stringify writes it, without an
 * object per message: ids are ULIDs and node names plain ASCII (both checked when stamped),
 * quoted as they are; anything else goes through JSON.stringify.
 */
export function acceptedLine(envs: readonly { id: string; toNode: string }[]): string {
  const parts: string[] = []
  for (const e of envs) {
    if (!PLAIN_NAME.test(e.id) || !PLAIN_NAME.test(e.toNode)) return JSON.stringify({ accepted: envs.map((x) => ({ id: x.id, toNode: x.toNode })) }) + '\n'
    parts.push(`{"id":"${e.id}","toNode":"${e.toNode}"}`)
  }
  return `{"accepted":[${parts.join(',')}]}\n`
}
const PLAIN_NAME = /^[A-Za-z0-9_.-]*$/

/** A reply line already written as JSON (with its newline). */
class JsonLine {
  constructor(readonly text: string) {}
}

/** A socket file left by a dead process is removed; one a live process answers on is not. */
async function removeStale(file: string): Promise<void> {
  if (!fs.existsSync(file)) return
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(file, () => { c.destroy(); resolve(true) })
    c.on('error', () => resolve(false))
  })
  if (alive) throw new OutpostError('locked', `api: ${file} is in use by a running outpost`)
  fs.rmSync(file, { force: true })
}
