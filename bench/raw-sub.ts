/**
 * Baseline subscriber for the broker benchmarks, in its own process like a node: counts N
 * messages on one subject/topic and prints "ready" when subscribed, then "done <ms>" (time from
 * the first message to the last).
 */
import mqtt from 'mqtt'
import { connect } from 'nats'

const [kind, url, subject, countArg] = process.argv.slice(2) as [string, string, string, string]
const count = Number(countArg)
const user = process.env.RAW_USER || undefined
const pass = process.env.RAW_PASS || undefined
let got = 0
let first = 0
const hit = (): void => {
  if (got++ === 0) first = performance.now()
  if (got === count) {
    process.stdout.write(`done ${performance.now() - first}\n`)
    process.exit(0)
  }
}

if (kind === 'nats') {
  void connect({ servers: url, ...(user ? { user, pass: pass! } : {}) }).then(async (nc) => {
    nc.subscribe(subject, { callback: hit })
    await nc.flush()
    process.stdout.write('ready\n')
  })
} else {
  const c = mqtt.connect(url, { clientId: `raw-sub-${process.pid}`, clean: true, ...(user ? { username: user, password: pass! } : {}) })
  c.on('connect', () => c.subscribe(subject, { qos: 1 }, () => process.stdout.write('ready\n')))
  c.on('message', hit)
}
