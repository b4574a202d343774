/**
 * How long a file chunk waits for its ACK (sender.ts). Delivery starts a message's ACK timer
 * when the transport says its bytes have left this node (src/delivery.ts, Outbound.written),
 * so a chunk queued behind others on this node's own slow uplink is not sent again for it.
 * That cannot see a slow link further on: pushed to a node on GSM, the window of chunks
 * crosses the fast link to the hub at once and queues at the hub, in front of the receiver's
 * slow downlink; the last chunk's ACK comes only after the whole window has crossed it. Were
 * it sent again after delivery.ackTimeout (5 s), such a link would carry every late chunk
 * twice, then three times (test/files/slow-link.test.ts). A link that drops is not waited
 * for: a reconnect, or the receiver coming back online, sends what was in flight at once.
 */

/** The slowest link a chunk's ACK timeout allows for, in bytes a second (a GSM modem's). */
const SLOW_LINK_BYTES_PER_S = 16 * 1024

/** Seconds to wait for a chunk's ACK: the window crossing a slow link, at least delivery.ackTimeout. */
export function chunkAckTimeout(window: number, chunkBytes: number, ackTimeout: number, rate = 0): number {
  const speed = rate > 0 ? Math.min(rate, SLOW_LINK_BYTES_PER_S) : SLOW_LINK_BYTES_PER_S
  return Math.max(ackTimeout, Math.ceil((window * chunkBytes) / speed))
}
