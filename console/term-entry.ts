/**
 * xterm.js and its stylesheet as files of their own (/console/term.js, /console/term.css),
 * loaded by the terminal view when it first opens (xterm-load.ts): the other views stay small.
 */
import '@xterm/xterm/css/xterm.css'
import { Terminal } from '@xterm/xterm'
import { cspSafeStyles } from './csp-styles'

cspSafeStyles()
;(globalThis as { outpostXterm?: { Terminal: typeof Terminal } }).outpostXterm = { Terminal }
