/**
 * Every transport, by its config name. A static map: the bundler and the single binary see
 * them all, and a test can build its own registry.
 */
import type { TransportPlugin } from '../src/transport'
import mqtt from './mqtt'
import nats from './nats'
import tcp from './tcp'

export const TRANSPORTS: ReadonlyMap<string, TransportPlugin> = new Map([tcp, mqtt, nats].map((p) => [p.kind, p]))
