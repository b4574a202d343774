/**
 * A job's stop switch. Its AbortSignal is made only when someone asks for it: most methods
 * (heartbeats, reply sinks) never look, and an AbortController per message showed in profiles.
 */
export class Stopper {
  #controller: AbortController | undefined
  #stopped = false
  #reason: unknown
  /** The first listener (a unary run's, nearly always the only one): no Set a message. */
  #one: (() => void) | undefined
  /** Made for a second listener (a method that ends before any stop needs none). */
  #listeners: Set<() => void> | undefined

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#stopped) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  get aborted(): boolean {
    return this.#stopped
  }

  get reason(): unknown {
    return this.#reason
  }

  abort(reason: unknown): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#reason = reason
    this.#controller?.abort(reason)
    const one = this.#one
    const rest = this.#listeners === undefined ? undefined : [...this.#listeners]
    if (one !== undefined) one()
    if (rest !== undefined) for (const f of rest) f()
  }

  /** Call f once stopped; returns the unsubscribe. */
  onAbort(f: () => void): () => void {
    const listeners = (this.#listeners ??= new Set())
    listeners.add(f)
    return () => { listeners.delete(f) }
  }

  /** Call f once stopped, until off(f) (no closure made for the unsubscribe). */
  on(f: () => void): void {
    // The slot only while the Set is empty: listeners are called in the order they came.
    if (this.#one === undefined && (this.#listeners === undefined || this.#listeners.size === 0)) this.#one = f
    else if (this.#one !== f) (this.#listeners ??= new Set()).add(f)
  }

  off(f: () => void): void {
    if (this.#one === f) this.#one = undefined
    else this.#listeners?.delete(f)
  }
}

/** A method that ignores its abort signal still gets a bounded time to give up. */
export function untilStopped<T>(work: Promise<T>, stop: Stopper, graceMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let grace: NodeJS.Timeout | undefined
    const onAbort = (): void => {
      grace = setTimeout(() => reject(stop.reason), graceMs)
      grace.unref()
    }
    if (stop.aborted) onAbort()
    else stop.on(onAbort)
    // Settled by the work (or the grace timer, whichever is first); one handler each way.
    const settle = (): void => {
      stop.off(onAbort)
      if (grace) clearTimeout(grace)
    }
    work.then((v) => { settle(); resolve(v) }, (err: unknown) => { settle(); reject(err) })
  })
}
