/**
 * Backpressure in the hub (src/hub.ts): the hub stops reading a sender while what it holds for a
 * receiver that sender writes to is past HUB_HIGH_WATER (a socket's unsent bytes; for the node in
 * the hub's own process, its intake, transports/base.ts), and reads it again once the receiver
 * has room or is gone. A sender that does not read what the hub sends it (its replies, its
 * nacks) is not read either until it does. So a flooded or slow receiver slows its senders down
 * to its pace, through their TCP windows, instead of growing the hub's memory; nothing is
 * dropped. Pausing a sender stops only that sender: other pairs go on. Several senders to one
 * receiver (central) are each paused while it is full, and all read again when it has room.
 *
 *   route(sender → receiver) ─▶ forwarded ─▶ receiver full? ─▶ sender paused ─▶ receiver drained / gone ─▶ sender read again
 */
import type { Conn } from './hub-peer'

/** Bytes waiting for a receiver past which its senders are not read (a socket's writableLength). */
export const HUB_HIGH_WATER = 1024 * 1024

/** `sender` has just sent to `target` (or written to itself): pause it while either is full. */
export function pace(sender: Conn, target: Conn): void {
  if (target.out.full()) hold(sender, target)
  else if (sender !== target && sender.out.full()) hold(sender, sender)
}

/** `sender` is not read until `target` has room (or is gone). Only sockets are paused: an in-process node is not read. */
function hold(sender: Conn, target: Conn): void {
  if (sender.out.pause === undefined || sender.closed || sender.heldBy?.has(target) === true) return
  const held = (sender.heldBy ??= new Set())
  held.add(target)
  if (held.size === 1) sender.out.pause()
  const first = target.roomWaiters === undefined
  ;(target.roomWaiters ??= []).push(() => {
    held.delete(target)
    if (held.size === 0 && !sender.closed) sender.out.resume?.()
  })
  // Once per time it is full (a `whenRoom` that answers at once finds the waiter in place).
  if (first) target.out.whenRoom(() => wake(target))
}

/** `target` has room again, or is gone: its held senders are read again (each once nothing else holds it). */
export function wake(target: Conn): void {
  const waiters = target.roomWaiters
  target.roomWaiters = undefined
  for (const go of waiters ?? []) go()
}
