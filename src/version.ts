import pkg from '../package.json'

/** Set by the packaging build (esbuild `define`) to stamp a binary with another version. */
declare const __OUTPOST_VERSION__: string | undefined

export const VERSION: string = typeof __OUTPOST_VERSION__ === 'string' ? __OUTPOST_VERSION__ : pkg.version
/**
 * Bumped when the wire protocol changes; negotiated in hello/welcome and, on the brokers, in
 * presence (2: batch frames, src/wire/batch.ts; 3: ACKs of many ids, src/wire/acks.ts; 4: compressed
 * batched payloads on MQTT and NATS, transports/broker-payload.ts, which a node with
 * transport.compress off does not announce: it says 3 there).
 */
export const API_VERSION = 4
