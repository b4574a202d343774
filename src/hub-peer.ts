/**
 * What the hub (src/hub.ts) knows of a connection, how it writes to one, and how it names frames
 * in --debug lines.
 */
import type net from 'node:net'
import type { Ticket } from './hub-guard'
import { HUB_HIGH_WATER } from './hub-flow'
import { SlabWriter } from './hub-out'
import { abbreviate, type Frame } from './wire/framing'

/** A connection between accept and its welcome: it holds a place under its address's cap. */
export interface Unproven {
  ticket: Ticket
  /** The hello deadline. */
  timer: NodeJS.Timeout
  /** The answer to a failed hello is held back: the place stays taken until it is sent, even if the peer left. */
  holding: boolean
  /** What the deadline does (shown: log it by itself): close the socket (TLS still handshaking), or fail the connection. */
  expire: (shown: boolean) => void
}

export interface Conn {
  out: Peer
  node: string | undefined
  peer: string
  closed: boolean
  /** Sent presence frames (it asked with `watch`). */
  watching: boolean
  /** The apiVersion of its hello: from BATCH_API on it takes batch frames, before that only msg frames. */
  api: number
  /** Its hello announced `deflate`: zbatch frames go to it whole, else inflated (src/hub-deliver.ts). */
  deflate: boolean
  /** Until its hello is accepted (sockets only). */
  unproven?: Unproven | undefined
  /** Its hello was refused and the answer is held back: what else it sends is ignored. */
  refusing?: boolean
  /** Nodes whose messages were forwarded on this connection: woken (`online`) when its node is back after losing it. */
  senders?: Set<string> | undefined
  /** Connections whose fullness keeps this one from being read (src/hub-flow.ts). */
  heldBy?: Set<Conn> | undefined
  /** Called once this connection has room again, or is gone: senders held for it. */
  roomWaiters?: (() => void)[] | undefined
  /** Its Peer.whenRoom is asked and has not answered yet. */
  waitsForRoom?: boolean
  /** Runs while senders are held for it: when it fires it is `stuck` (src/hub-flow.ts), unless it took enough since `heldBytes`. */
  holdTimer?: NodeJS.Timeout | undefined
  heldBytes?: number | undefined
  /** No room for HOLD_MAX_MS: what is sent to it is refused `busy` until it has room. */
  stuck?: boolean
}

/** Where a connection's frames go: a socket (encoded, one write per tick) or a node in this process. */
export interface Peer {
  write(f: Frame): void
  /** Close after what was written. */
  end(): void
  destroy(): void
  /** What waits to reach it is past HUB_HIGH_WATER (a socket's unsent bytes; an in-process node's intake). */
  full(): boolean
  /** `go` once it is no longer full (a socket: drained or closed; called at most once). */
  whenRoom(go: () => void): void
  /** Bytes waiting to reach it (sockets). */
  pending?(): number
  /** Stop and start reading from it (sockets; an in-process node is not read). */
  pause?(): void
  resume?(): void
}

export function socketPeer(sock: net.Socket): Peer {
  // The frames of one tick go out together, as one buffer (src/hub-out.ts).
  const out = new SlabWriter(sock)
  return {
    write: (f) => out.write(f),
    end: () => { out.flush(); sock.end() },
    destroy: () => { sock.destroy() },
    full: () => sock.writableLength > HUB_HIGH_WATER,
    pending: () => sock.writableLength,
    whenRoom: (go) => {
      // Past HUB_HIGH_WATER a write returned false, so 'drain' comes once all is sent.
      const done = (): void => { sock.off('drain', done); sock.off('close', done); go() }
      sock.on('drain', done)
      sock.on('close', done)
    },
    pause: () => { sock.pause() },
    resume: () => { sock.resume() },
  }
}

export function describe(f: Frame): string {
  switch (f.t) {
    case 'msg': return `msg ${f.id} → ${f.to} ${abbreviate(f.b)}`
    case 'part': return `part ${f.id} ${f.i + 1}/${f.n} → ${f.to} ${abbreviate(f.b)}`
    case 'batch': return `batch of ${f.ids.length} → ${f.to}: ${f.ids.join(' ')}`
    case 'zbatch': return `zbatch of ${f.ids.length} (${f.z.length} B) → ${f.to}: ${f.ids.join(' ')}`
    case 'acks': return `acks ${f.id} → ${f.to}: ${f.ids.join(' ')}`
    case 'hello': return `hello ${f.node} (outpost ${f.version})`
    case 'log': return `log ${f.line.slice(0, 80)}`
    default: return JSON.stringify(f)
  }
}

/** A node running in the hub's own process, attached with Hub.attach. */
export interface HubLink {
  /** A frame from the node (msg, part, online, watch, log, …), as if it came over a socket. */
  send(f: Frame): void
  /** Detach: the node is offline for the hub from now on. */
  close(): void
}
