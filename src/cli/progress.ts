/**
 * Progress of a command over many names: on a terminal one line per name with
 * a mark, otherwise plain timestamped log lines that read well in CI output.
 */
import { describeError, errorText } from './errors.js';
import type { CliOutput } from './io.js';

export class Progress {
  readonly #out: CliOutput;
  readonly #tty: boolean;
  readonly #verb: string;
  /** Only failures are printed (`--quiet`). */
  readonly #quiet: boolean;

  constructor(out: CliOutput, verb: string, options: { quiet?: boolean } = {}) {
    this.#out = out;
    this.#tty = out.isTTY === true;
    this.#verb = verb;
    this.#quiet = options.quiet === true;
  }

  start(name: string): void {
    if (this.#quiet) return;
    this.#write(name, this.#tty ? `  …  ${name}: ${this.#verb}` : `${this.#verb} started`);
  }

  done(name: string, detail: string): void {
    if (this.#quiet) return;
    this.#write(name, this.#tty ? `  ✓  ${name}: ${detail}` : detail);
  }

  skip(name: string, detail: string): void {
    if (this.#quiet) return;
    this.#write(name, this.#tty ? `  -  ${name}: ${detail}` : detail);
  }

  fail(name: string, error: unknown): void {
    this.#write(name, this.#tty ? `  ✗  ${name}: ${errorText(error)}` : `failed: ${errorText(error)}`);
    const { remedy } = describeError(error);
    if (remedy !== undefined) this.#write(name, this.#tty ? `     hint: ${remedy}` : `hint: ${remedy}`);
  }

  #write(name: string, text: string): void {
    this.#out.write(this.#tty ? `${text}\n` : `${new Date().toISOString()} ${name} ${text}\n`);
  }
}
