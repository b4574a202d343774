/**
 * Plain objects indexed by names from outside (a frame, a client, the config file, a version
 * file). A plain object inherits `constructor`, `toString`, `__proto__` and the rest of
 * Object.prototype: read, such a name finds something that was never stored; written,
 * `__proto__` replaces the prototype instead of storing a value. These two see own keys only,
 * so such names are names like any other. Where the code is ours to shape, a Map does the same.
 */

/** table[key] if the table itself holds key, else undefined (never an inherited member). */
export function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined
}

/** table[key] = value as an own key, `__proto__` included (an assignment would set the prototype). */
export function putOwn<T>(table: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true })
}
