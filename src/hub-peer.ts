/**
 * What the hub (src/hub.ts) knows of a connection, how it writes to one, and how it names frames
 * in --debug lines.
 */
import type net from 'node:net'
import type { Ticket } from './hub-guard'
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
}

/** Where a connection's frames go: a socket (encoded, one write per tick) or a node in this process. */
export interface Peer {
  write(f: Frame): void
  /** Close after what was written. */
  end(): void
  destroy(): void
}

export function socketPeer(sock: net.Socket): Peer {
  // The frames of one tick go out together, as one buffer (src/hub-out.ts).
  const out = new SlabWriter(sock)
  return {
    write: (f) => out.write(f),
    end: () => { out.flush(); sock.end() },
    destroy: () => { sock.destroy() },
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
