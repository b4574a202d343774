// The ppc64le repair (NOTES "Single binary"): postject's injection leaves the ppc64le binary
// with a damaged dynamic symbol table (`main` renamed; addons then fail with `undefined symbol:
// napi_create_function`). Copying these sections back from the untouched base binary repairs
// it; they keep their sizes and places, only their bytes were rewritten.
import fs from 'node:fs'

const SECTIONS = ['.gnu.hash', '.dynsym', '.dynstr', '.gnu.version', '.gnu.version_r', '.dynamic']

/** Section name → { offset, size } of a 64-bit little-endian ELF file. */
export function sections(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file')
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  const shstrndx = buf.readUInt16LE(0x3e)
  const at = (i) => shoff + i * shentsize
  const strOff = Number(buf.readBigUInt64LE(at(shstrndx) + 0x18))
  const out = new Map()
  for (let i = 0; i < shnum; i++) {
    const h = at(i)
    const nameOff = buf.readUInt32LE(h)
    const end = buf.indexOf(0, strOff + nameOff)
    const name = buf.toString('latin1', strOff + nameOff, end)
    out.set(name, { offset: Number(buf.readBigUInt64LE(h + 0x18)), size: Number(buf.readBigUInt64LE(h + 0x20)) })
  }
  return out
}

export function repairDynsym(baseFile, outFile) {
  const base = fs.readFileSync(baseFile)
  const out = fs.readFileSync(outFile)
  const bs = sections(base)
  const os = sections(out)
  let copied = 0
  for (const name of SECTIONS) {
    const b = bs.get(name)
    const o = os.get(name)
    if (!b || !o) continue
    if (b.size !== o.size) throw new Error(`ppc64le repair: ${name} is ${o.size} bytes in the output but ${b.size} in the base binary`)
    base.copy(out, o.offset, b.offset, b.offset + b.size)
    copied++
  }
  fs.writeFileSync(outFile, out)
  return copied
}
