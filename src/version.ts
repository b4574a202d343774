import pkg from '../package.json'

/** Set by the packaging build (esbuild `define`) to stamp a binary with another version. */
declare const __OUTPOST_VERSION__: string | undefined

export const VERSION: string = typeof __OUTPOST_VERSION__ === 'string' ? __OUTPOST_VERSION__ : pkg.version
/** Bumped when the wire protocol changes; negotiated in hello/welcome (2: batch frames, src/wire/batch.ts; 3: ACKs of many ids, src/wire/acks.ts). */
export const API_VERSION = 3
