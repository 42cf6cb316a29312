/**
 * Progress of a command over many names: on a terminal one line per name with
 * a mark, otherwise plain timestamped log lines that read well in CI output.
 */
import type { CliOutput } from './io.js';

export class Progress {
  readonly #out: CliOutput;
  readonly #tty: boolean;
  readonly #verb: string;

  constructor(out: CliOutput, verb: string) {
    this.#out = out;
    this.#tty = out.isTTY === true;
    this.#verb = verb;
  }

  start(name: string): void {
    this.#write(name, this.#tty ? `  …  ${name}: ${this.#verb}` : `${this.#verb} started`);
  }

  done(name: string, detail: string): void {
    this.#write(name, this.#tty ? `  ✓  ${name}: ${detail}` : detail);
  }

  skip(name: string, detail: string): void {
    this.#write(name, this.#tty ? `  -  ${name}: ${detail}` : detail);
  }

  fail(name: string, error: unknown): void {
    this.#write(name, this.#tty ? `  ✗  ${name}: ${errorText(error)}` : `failed: ${errorText(error)}`);
  }

  #write(name: string, text: string): void {
    this.#out.write(this.#tty ? `${text}\n` : `${new Date().toISOString()} ${name} ${text}\n`);
  }
}

export function errorText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && code.startsWith('ERR_') ? `${message} (${code})` : message;
}
