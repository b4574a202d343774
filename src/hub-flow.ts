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
 * A receiver that gets no room for HOLD_MAX_MS and took less than PROGRESS_BYTES meanwhile (it reads nothing, or next to nothing) is `stuck`:
 * its senders are read again, and what they send it is refused `busy` (src/hub-route.ts: the
 * sender keeps it, as for `offline`) until it has room, when they are told `online`. A sender
 * pauses all its pairs: held for ever by a receiver that never reads (a node answering one that
 * does not read its replies), it would stall them all.
 *
 *   route(sender → receiver) ─▶ forwarded ─▶ receiver full? ─▶ sender paused ─▶ receiver drained / gone ─▶ sender read again
 *                                                                            └▶ HOLD_MAX_MS, still full ─▶ stuck: sender read again, its sends to it refused busy ─▶ drained ─▶ online
 */
import type { Conn } from './hub-peer'

/** Bytes waiting for a receiver past which its senders are not read (a socket's writableLength). */
export const HUB_HIGH_WATER = 1024 * 1024
/** How long senders are held for a receiver that gets no room before it counts as stuck, unless it took PROGRESS_BYTES meanwhile. */
export const HOLD_MAX_MS = 5_000
/** What a receiver must take in each HOLD_MAX_MS to count as slow rather than stuck (~13 KB/s; a socket's: what the hub holds for it went down by that much). */
export const PROGRESS_BYTES = 64 * 1024

/** What the router does when a receiver is stuck, and once it has room again. */
export interface FlowHooks {
  stuck(target: Conn): void
  roomAgain(target: Conn): void
}

/** `sender` has just sent to `target` (or written to itself): pause it while either is full. */
export function pace(sender: Conn, target: Conn, hooks: FlowHooks): void {
  if (target.out.full()) hold(sender, target, hooks)
  else if (sender !== target && sender.out.full()) hold(sender, sender, hooks)
}

/** `sender` is not read until `target` has room (or is gone, or stuck). Only sockets are paused: an in-process node is not read. */
function hold(sender: Conn, target: Conn, hooks: FlowHooks): void {
  if (sender.out.pause === undefined || sender.closed || sender.heldBy?.has(target) === true) return
  if (target.stuck === true && sender !== target) return // its senders are refused `busy` instead (src/hub-route.ts)
  const held = (sender.heldBy ??= new Set())
  held.add(target)
  if (held.size === 1) sender.out.pause()
  ;(target.roomWaiters ??= []).push(() => {
    held.delete(target)
    if (held.size === 0 && !sender.closed) sender.out.resume?.()
  })
  // A receiver held for by others: stuck if it has no room by then (its own hold on itself is its own business).
  if (sender !== target && target.holdTimer === undefined) arm(target, hooks)
  // Once per time it is full (a `whenRoom` that answers at once finds the waiter in place).
  if (target.waitsForRoom === true) return
  target.waitsForRoom = true
  target.out.whenRoom(() => {
    target.waitsForRoom = false
    const was = target.stuck === true
    target.stuck = false
    wake(target)
    if (was && !target.closed) hooks.roomAgain(target)
  })
}

function arm(target: Conn, hooks: FlowHooks): void {
  target.heldBytes = target.out.pending?.()
  target.holdTimer = setTimeout(() => stick(target, hooks), HOLD_MAX_MS)
  target.holdTimer.unref()
}

/** No room for HOLD_MAX_MS: unless it took PROGRESS_BYTES meanwhile, the senders held for `target` are read again; what they send it is refused until it has room. */
function stick(target: Conn, hooks: FlowHooks): void {
  target.holdTimer = undefined
  if (target.closed || target.waitsForRoom !== true) return
  const now = target.out.pending?.()
  if (now !== undefined && target.heldBytes !== undefined && target.heldBytes - now >= PROGRESS_BYTES) return arm(target, hooks)
  target.stuck = true
  hooks.stuck(target)
  release(target)
}

/** `target` has room again, or is gone: its held senders are read again (each once nothing else holds it). */
export function wake(target: Conn): void {
  if (target.holdTimer !== undefined) clearTimeout(target.holdTimer)
  target.holdTimer = undefined
  release(target)
}

function release(target: Conn): void {
  const waiters = target.roomWaiters
  target.roomWaiters = undefined
  for (const go of waiters ?? []) go()
}
