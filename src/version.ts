import pkg from '../package.json'

export const VERSION: string = pkg.version
/** Bumped when the wire protocol changes incompatibly. */
export const API_VERSION = 1
