/**
 * How the hub (src/hub.ts) reads a plain TCP socket: into one 64 KiB buffer of the connection's
 * own, used again for every read, rather than a fresh 64 KiB buffer a read (Node's default). A
 * 200 MB push crossing the hub is ~3,200 reads; their buffers, outside the JavaScript heap, were
 * what started the hub's full garbage collections (8–9 a push). Node offers this for the sockets
 * a program connects (`net.connect`'s `onread`), not for those a server accepts; the accepted
 * socket is given the same settings that option gives (found on a socket made with it, by their
 * values, and checked). Where anything of that is missing (another Node), or for TLS sockets,
 * the socket's `data` events are used as before.
 *
 * The buffer's bytes are valid only during `onBytes`: its caller must be done with them when it
 * returns (the hub's FrameDecoder copies an incomplete frame, `transient`; what it forwards is
 * copied into the receiver's slab, src/hub-out.ts; an in-process node copies what it keeps).
 */
import net from 'node:net'

const READ_BYTES = 64 * 1024

interface OnreadKeys { buffer: symbol; callback: symbol; generator: symbol }

/** The socket's own keys that net.Socket's `onread` option sets, or undefined when they cannot be found for sure. */
function onreadKeys(): OnreadKeys | undefined {
  const buffer = Buffer.alloc(1)
  const callback = (): void => {}
  // net.Socket takes `onread` as net.connect does (not in @types/node's constructor options).
  const probe = new net.Socket({ onread: { buffer, callback } } as unknown as net.SocketConstructorOpts) as unknown as Record<symbol, unknown>
  const keys = Object.getOwnPropertySymbols(probe)
  const find = (want: unknown, name: string): symbol | undefined => {
    const found = keys.filter((k) => probe[k] === want && k.description === name)
    return found.length === 1 ? found[0] : undefined
  }
  const b = find(buffer, 'kBuffer')
  const c = find(callback, 'kBufferCb')
  const g = find(null, 'kBufferGen')
  ;(probe as unknown as net.Socket).destroy()
  return b !== undefined && c !== undefined && g !== undefined ? { buffer: b, callback: c, generator: g } : undefined
}

let keys: OnreadKeys | undefined | null = null

/**
 * Reads `sock` (a plain TCP socket just accepted, not yet read) into one buffer of its own,
 * calling `onBytes` with a view of each read. False when this Node does not allow it: the caller
 * listens for `data` instead.
 */
export function readIntoOwnBuffer(sock: net.Socket, onBytes: (bytes: Buffer) => void): boolean {
  if (keys === null) keys = onreadKeys()
  const handle = (sock as unknown as { _handle?: { useUserBuffer?: (b: Uint8Array) => void } })._handle
  if (keys === undefined || handle === undefined || typeof handle.useUserBuffer !== 'function') return false
  const buffer = Buffer.allocUnsafe(READ_BYTES)
  const own = sock as unknown as Record<symbol, unknown>
  own[keys.buffer] = buffer
  own[keys.generator] = null
  own[keys.callback] = (n: number, b: Buffer): void => onBytes(b.subarray(0, n))
  handle.useUserBuffer(buffer)
  return true
}
