/**
 * A single-consumer async queue: producers push, one `for await` loop consumes. Used for a
 * transport's inbound messages and events, so plugins hand over values, never callbacks.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  /** Called each time the consumer has taken items (see `weight`): a producer that paused may go on. */
  onTaken: (() => void) | undefined
  private items: T[] = []
  /** Sum of `weigh` over the items queued. */
  private heavy = 0
  private head = 0
  private waiting: ((r: IteratorResult<T>) => void) | undefined
  /** A batches() consumer waiting: woken once a microtask later, with all that was pushed meanwhile. */
  private waitingBatch: ((r: IteratorResult<T[]>) => void) | undefined
  private waking = false
  private ended = false

  /** `weigh`: an item's weight (bytes, say), summed in `weight` while it is queued. */
  constructor(private readonly weigh?: (item: T) => number) {}

  /** What is queued, by `weigh` (0 without one). */
  get weight(): number {
    return this.heavy
  }

  push(item: T): void {
    if (this.ended) return
    if (this.weigh !== undefined) this.heavy += this.weigh(item)
    if (this.waitingBatch !== undefined) {
      this.items.push(item)
      if (!this.waking) {
        this.waking = true
        queueMicrotask(this.wake)
      }
      return
    }
    if (this.waiting) {
      const w = this.waiting
      this.waiting = undefined
      this.heavy = 0
      w({ value: item, done: false })
      return
    }
    this.items.push(item)
  }

  /** No more items: the consumer's loop ends once it has taken what is queued. */
  end(): void {
    this.ended = true
    if (this.waiting) {
      const w = this.waiting
      this.waiting = undefined
      w({ value: undefined, done: true })
    }
    if (this.waitingBatch !== undefined && !this.waking) {
      const w = this.waitingBatch
      this.waitingBatch = undefined
      w({ value: undefined, done: true })
    }
  }

  private readonly wake = (): void => {
    this.waking = false
    const w = this.waitingBatch
    if (w === undefined || (this.size === 0 && !this.ended)) return
    this.waitingBatch = undefined
    w(this.size > 0 ? { value: this.take(), done: false } : { value: undefined, done: true })
  }

  /** Everything queued, in order. */
  private take(): T[] {
    const all = this.head === 0 ? this.items : this.items.slice(this.head)
    this.items = []
    this.head = 0
    this.heavy = 0
    if (this.onTaken !== undefined) queueMicrotask(this.onTaken)
    return all
  }

  /**
   * The same items, a batch at a time: all that is queued when the consumer asks, or all that
   * is pushed in one go (a read's envelopes) once it waits. One promise a batch rather than one
   * an item. Use either this or the queue's own iterator, not both.
   */
  batches(): AsyncIterable<T[]> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: (): Promise<IteratorResult<T[]>> => {
          if (this.size > 0) return Promise.resolve({ value: this.take(), done: false })
          if (this.ended) return Promise.resolve({ value: undefined, done: true })
          return new Promise((resolve) => { this.waitingBatch = resolve })
        },
        return: (): Promise<IteratorResult<T[]>> => {
          this.end()
          return Promise.resolve({ value: undefined, done: true })
        },
      }),
    }
  }

  get size(): number {
    return this.items.length - this.head
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.head < this.items.length) {
          const value = this.items[this.head++] as T
          if (this.weigh !== undefined) this.heavy -= this.weigh(value)
          if (this.onTaken !== undefined && this.head === this.items.length) queueMicrotask(this.onTaken)
          if (this.head > 1024 && this.head * 2 > this.items.length) {
            this.items = this.items.slice(this.head)
            this.head = 0
          }
          return Promise.resolve({ value, done: false })
        }
        if (this.ended) return Promise.resolve({ value: undefined, done: true })
        return new Promise((resolve) => { this.waiting = resolve })
      },
      return: () => {
        this.end()
        return Promise.resolve({ value: undefined, done: true })
      },
    }
  }
}
