/** Shell quoting for the commands the CLI prints (its own module so `trust` need not load the demo server). */

/** Quotes a path for a POSIX shell only when it needs it. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
