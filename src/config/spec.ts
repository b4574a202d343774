/**
 * The building blocks of the config schema: spec types, the TypeScript type each one infers,
 * and the small builders the schema is written with. Part of the plugin contract: a transport
 * declares its own config section (transport.<kind>) with these.
 */

export interface DefaultsContext {
  hostname: string
  uid: number
  home: string
}

interface Base {
  doc: string
  /** Extra check on a value of the right type: returns what is wrong, or undefined. */
  check?: (value: never) => string | undefined
}
export interface StrSpec extends Base { t: 'string'; def: string; dyn?: (ctx: DefaultsContext) => string }
export interface NullStrSpec extends Base {
  t: 'string?'
  def: null
  /** A whole number is taken as this string (`api.http: 8080`, a port alone, is "8080"). */
  numberOk?: true
}
export interface EnumSpec<V extends string = string> extends Base { t: 'enum'; values: readonly V[]; def: V }
export interface IntSpec extends Base { t: 'int'; def: number; min: number; max?: number }
export interface BoolSpec extends Base { t: 'bool'; def: boolean }
export interface StringsSpec extends Base { t: 'strings'; def: readonly string[]; /** true reads as ["*"], false as []. */ boolOk?: boolean; /** Whole numbers are read as their digits (a list of ports). */ numbersOk?: boolean }
export interface MapSpec extends Base {
  t: 'map'
  def: Readonly<Record<string, string>>
  /** Extra check on each entry: returns what is wrong with it, or undefined. */
  entry?: (key: string, value: string) => string | undefined
}
export interface ObjSpec<F extends Fields = Fields> extends Base { t: 'object'; fields: F }
export interface ListSpec<I extends ItemSpec = ItemSpec> extends Base { t: 'list'; item: I; def: readonly unknown[] }
export interface ItemSpec<F extends Fields = Fields, R extends string = string> { fields: F; required: readonly R[] }

export type Spec = StrSpec | NullStrSpec | EnumSpec | IntSpec | BoolSpec | StringsSpec | MapSpec | ObjSpec | ListSpec
export type Fields = { readonly [key: string]: Spec }

export type Infer<S> =
  S extends StrSpec ? string
  : S extends NullStrSpec ? string | null
  : S extends EnumSpec<infer V> ? V
  : S extends IntSpec ? number
  : S extends BoolSpec ? boolean
  : S extends StringsSpec ? string[]
  : S extends MapSpec ? Record<string, string>
  : S extends ObjSpec<infer F> ? { [K in keyof F]: Infer<F[K]> }
  : S extends ListSpec<ItemSpec<infer F, infer R>> ? Array<{ [K in keyof F as K extends R ? K : never]: Infer<F[K]> } & { [K in keyof F as K extends R ? never : K]?: Infer<F[K]> }>
  : never

export const str = (def: string, doc: string, extra: Partial<StrSpec> = {}): StrSpec => ({ t: 'string', def, doc, ...extra })
export const nstr = (doc: string, extra: Partial<NullStrSpec> = {}): NullStrSpec => ({ t: 'string?', def: null, doc, ...extra })
export const oneOf = <V extends string>(values: readonly V[], def: V, doc: string): EnumSpec<V> => ({ t: 'enum', values, def, doc })
export const int = (def: number, doc: string, min = 0, max?: number): IntSpec => (max === undefined ? { t: 'int', def, doc, min } : { t: 'int', def, doc, min, max })
export const bool = (def: boolean, doc: string): BoolSpec => ({ t: 'bool', def, doc })
export const strs = (def: readonly string[], doc: string, extra: Partial<StringsSpec> = {}): StringsSpec => ({ t: 'strings', def, doc, ...extra })
export const map = (doc: string, extra: Partial<MapSpec> = {}): MapSpec => ({ t: 'map', def: {}, doc, ...extra })
export const obj = <F extends Fields>(fields: F, doc: string): ObjSpec<F> => ({ t: 'object', fields, doc })
export const list = <F extends Fields, R extends string>(fields: F, required: readonly R[], def: readonly unknown[], doc: string): ListSpec<ItemSpec<F, R>> =>
  ({ t: 'list', item: { fields, required }, def, doc })
