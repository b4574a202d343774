/**
 * What a node opens before its parts are wired (node.ts OutpostNode.start): the data directory,
 * the outbox (its lock), the node key, and the transport with its options.
 */
import path from 'node:path'
import type { Config } from './config'
import { OutpostError } from './errors'
import { fingerprint, nodeKey, publicKeyText, type KeyPair } from './keys'
import { ensureDataDir } from './lib/data-dir'
import { releaseHeap } from './lib/heap'
import type { Logger } from './log'
import { Outbox } from './store/outbox'
import { WireMeter } from './pacing'
import type { Transport, TransportOptions, TransportPlugin } from './transport'
import { readPending } from './upgrade/watchdog'
import { VERSION } from './version'
import { retireSlab } from './wire/envelope-codec'

export interface OpenedParts {
  dataDir: string
  outbox: Outbox
  transport: Transport
  /** `ed25519:<base64>` of key. */
  publicKey: string
  key: KeyPair
  /** What the transport writes, for transport.maxBytesPerSecond (only when that is set). */
  meter: WireMeter | undefined
}

/**
 * Open the data directory, the outbox, the node key and make the transport: from `transport`
 * when given (the node inside `outpost hub`), else from the plugin transport.kind names.
 */
export async function openParts(config: Config, logger: Logger, transports: ReadonlyMap<string, TransportPlugin>, made?: (options: TransportOptions) => Transport): Promise<OpenedParts> {
  const dataDir = path.resolve(config.dataDir)
  ensureDataDir(dataDir)
  const plugin = made === undefined ? transports.get(config.transport.kind) : undefined
  if (made === undefined && plugin === undefined) throw new OutpostError('config_invalid', `transport.kind ${config.transport.kind} is not built into this outpost (have: ${[...transports.keys()].join(', ')})`)
  const outbox = await Outbox.open({ dir: path.join(dataDir, 'outbox'), maxBytes: config.delivery.maxOutboxBytes, warn: (m) => logger.log('warn', m), afterBurst: () => { retireSlab(); releaseHeap() },
    reserveBytes: config.delivery.reserveBytes,
    // While an upgrade may roll back, snapshots stay readable by the previous binary.
    keepOldFormat: readPending(dataDir) !== undefined,
  })
  // After the outbox's lock: two processes on one data directory never both make a key.
  let key: ReturnType<typeof nodeKey>
  try {
    key = nodeKey(dataDir)
  } catch (err) {
    await outbox.close()
    throw err
  }
  const publicKey = publicKeyText(key.publicKey)
  if (key.created) logger.log('info', `node key made: ${path.join(dataDir, 'node.key')} (public key ${publicKey}, ${fingerprint(publicKey)})`)
  const tlog = logger.child(made === undefined ? config.transport.kind : 'hub')
  // The byte cap counts what crosses the connection (after batching and compression): the transport says.
  const meter = config.transport.maxBytesPerSecond > 0 ? new WireMeter() : undefined
  const options: TransportOptions = {
    node: config.node.name, servers: config.transport.servers, token: config.transport.token, tls: config.transport.tls,
    // transport.<kind>: the plugin's own section (transports/index.ts), checked against its schema.
    section: (config.transport as Record<string, unknown>)[config.transport.kind],
    // Central keeps the fleet's list: the hub tells it at once who comes and goes.
    presence: config.node.central === config.node.name,
    version: VERSION, log: tlog.log, compress: config.transport.compress, ...(logger.trace ? { debug: logger.trace } : {}),
    ...(meter !== undefined ? { onWire: meter.report } : {}),
  }
  // `never`: the section's type is the plugin's own; the config was validated against it.
  const transport = made !== undefined ? made(options) : plugin!.create(options as TransportOptions<never>)
  return { dataDir, outbox, transport, publicKey, key, meter }
}
