/**
 * Every transport, by its config name. A static list: the bundler and the single binary see
 * them all, a test can build its own registry, and the core derives from it the transport.kind
 * enum, the URL schemes transport.servers may use and each plugin's config section.
 * A new transport is one file beside this one and one entry in TRANSPORT_LIST.
 */
import type { TransportPlugin } from '../src/transport'
import memory from './memory'
import mqtt from './mqtt'
import nats from './nats'
import tcp from './tcp'

export const TRANSPORT_LIST = [tcp, mqtt, nats, memory] as const

export const TRANSPORTS: ReadonlyMap<string, TransportPlugin> = new Map(TRANSPORT_LIST.map((p) => [p.kind, p as TransportPlugin]))
