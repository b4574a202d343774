/**
 * The NATS transport's configuration (transports/nats.ts): its servers, its config section
 * (transport.nats) and the client's connection options made from them.
 */
import type { ConnectionOptions } from 'nats'
import { OutpostError } from '../src/errors'
import { nstr, obj, str, type Infer } from '../src/config/spec'
import type { ServerAddress, TransportOptions } from '../src/transport'
import { fullJitter, readConfigFile } from './base'

/**
 * The client is loaded when a NATS transport is created, not when outpost starts: it costs
 * ~12 MB of memory that nodes on another transport should not pay. (A static string: the
 * bundler still includes it.)
 */
export const client = (): typeof import('nats') => require('nats') as typeof import('nats')

const DEFAULT_PORT = 4222
/** The client's own reconnects: full jitter from 0 up to 0.5, 1, 2 … 30 s (see fullJitter). */
const RECONNECT_MIN_MS = 500
const RECONNECT_MAX_MS = 30_000

export function parseServer(url: string): ServerAddress {
  const m = /^(nats|tls):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/@]+)(?::(\d+))?\/?$/.exec(url)
  if (!m) throw new OutpostError('config_invalid', `transport.servers: ${JSON.stringify(url)} is not a nats:// (or tls://) URL, as transport.kind nats needs`)
  return { url, scheme: m[1]!, host: m[2]!.replace(/^\[(.*)\]$/, '$1'), port: m[3] ? Number(m[3]) : DEFAULT_PORT }
}

/** transport.nats of the config. */
export const SECTION = obj({
  user: nstr('NATS user.'),
  pass: nstr('NATS password.'),
  token: nstr('NATS token.'),
  nkeySeed: nstr('File holding an nkey seed.'),
  creds: nstr('A .creds file (JWT and seed).'),
  subjectPrefix: str('outpost', 'Subjects are <prefix>.<node>.<method>.<CommandACK|EventNACK>.'),
}, 'NATS options.')
export type Section = Infer<typeof SECTION>

/** The client's connection options from the transport's; `attempt`: the reconnect attempts so far (and one more). */
export function natsOptions(opts: TransportOptions<Section>, attempt: () => number): ConnectionOptions {
  const { section: nats, tls } = opts
  const o: ConnectionOptions = {
    servers: opts.servers.map((s) => s.replace(/^tls:\/\//, 'nats://')),
    name: `outpost ${opts.node} ${opts.version}`,
    maxReconnectAttempts: -1,
    reconnectDelayHandler: () => fullJitter(attempt(), RECONNECT_MIN_MS, RECONNECT_MAX_MS),
    waitOnFirstConnect: false,
    pingInterval: 15_000,
    maxPingOut: 3,
  }
  if (nats.user) o.user = nats.user
  if (nats.pass) o.pass = nats.pass
  if (nats.token) o.token = nats.token
  if (nats.creds) o.authenticator = client().credsAuthenticator(readConfigFile('transport.nats.creds', nats.creds))
  else if (nats.nkeySeed) o.authenticator = client().nkeyAuthenticator(new TextEncoder().encode(readConfigFile('transport.nats.nkeySeed', nats.nkeySeed).toString().trim()))
  if (tls.ca || tls.cert || opts.servers.some((s) => s.startsWith('tls://'))) {
    o.tls = {}
    if (tls.ca) o.tls.caFile = tls.ca
    if (tls.cert) o.tls.certFile = tls.cert
    if (tls.key) o.tls.keyFile = tls.key
  }
  return o
}
