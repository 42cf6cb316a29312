#!/usr/bin/env node
/** The `certkeeper` bin: wires the real process to run(). */
import { run } from './program.js';

const stop = new AbortController();
let signals = 0;
const onSignal = (signal: NodeJS.Signals): void => {
  signals++;
  // A second Ctrl-C means "now": skip the clean shutdown.
  if (signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
  stop.abort(new Error(`received ${signal}`));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
  signal: stop.signal,
});
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
process.exitCode = code;
