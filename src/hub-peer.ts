/**
 * How the hub (src/hub.ts) writes to a connection, and how it names frames in --debug lines.
 */
import type net from 'node:net'
import { abbreviate, encodeFrame, type Frame } from './wire/framing'

/** Where a connection's frames go: a socket (encoded, corked per tick) or a node in this process. */
export interface Peer {
  write(f: Frame): void
  /** Close after what was written. */
  end(): void
  destroy(): void
}

export function socketPeer(sock: net.Socket): Peer {
  let corked = false
  return {
    // Writes made in one tick go out together (cork/uncork).
    write(f) {
      if (!corked) {
        corked = true
        sock.cork()
        process.nextTick(() => { corked = false; sock.uncork() })
      }
      sock.write(encodeFrame(f))
    },
    end: () => { sock.end() },
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
