/** Baseline peer for `npm run bench -- tcp`: echoes every framed MessagePack frame it gets. */
import net from 'node:net'
import { encodeFrame, FrameDecoder } from '../src/wire/framing'

const server = net.createServer((sock) => {
  sock.setNoDelay(true)
  const dec = new FrameDecoder()
  let corked = false
  sock.on('data', (chunk: Buffer) => {
    if (!corked) { corked = true; sock.cork(); process.nextTick(() => { corked = false; sock.uncork() }) }
    for (const f of dec.push(chunk)) sock.write(encodeFrame(f))
  })
  sock.on('error', () => {})
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as net.AddressInfo).port}\n`)
})
