/** Reads a child process's stdout as newline-delimited JSON: one call per parsed line, another for lines that are not JSON. */
import type { Readable } from 'node:stream';

export function onJsonLines(stream: Readable | null | undefined, onValue: (value: unknown) => void, onOther: (line: string) => void): void {
  let buffered = '';
  stream?.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        onOther(line);
        continue;
      }
      onValue(value);
    }
  });
}
