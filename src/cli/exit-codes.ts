// Exit codes of every m1prep command; documented in the README ("Exit codes").
export const EXIT = {
  ok: 0,
  /** Bad input file (FormatError) or a verified boot that failed. */
  failure: 1,
  /** Bad command line. */
  usage: 2,
  /** Patch or profile invalid, or a required patch did not match. */
  patch: 3,
  /** The host lacks a tool, library or device. */
  host: 4,
  /** A bug in m1prep: please report it with the stack printed under --verbose. */
  internal: 70,
} as const;
