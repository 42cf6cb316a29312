/**
 * The test runner ends a file that timed out, or a run stopped with Ctrl-C, by a signal, and a
 * signal ends Node without its 'exit' event: the hooks that kill the servers a test started
 * (Pebble, BIND, etcd, workers) would not run and the servers would outlive the run. Turning
 * those signals into process.exit() runs the hooks. Installed once, by every helper that spawns.
 */
const SIGNALS = { SIGTERM: 15, SIGINT: 2, SIGHUP: 1 } as const;
let installed = false;

export function exitOnSignals(): void {
  if (installed) return;
  installed = true;
  for (const [signal, number] of Object.entries(SIGNALS)) {
    process.once(signal, () => process.exit(128 + number));
  }
}
