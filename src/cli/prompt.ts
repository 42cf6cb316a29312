/** Reads a secret from a terminal without echoing it. */
import { AbortedError, InvalidOptionError } from '../errors.js';
import type { CliInput, CliOutput } from './io.js';

export async function promptHidden(question: string, input: CliInput, output: CliOutput): Promise<string> {
  if (input.isTTY !== true || typeof input.setRawMode !== 'function') {
    throw new InvalidOptionError('--password', 'is required when stdin is not a terminal (or use --password-file)');
  }
  const setRawMode = input.setRawMode.bind(input);
  output.write(question);
  setRawMode(true);
  input.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      const onData = (chunk: Buffer | string): void => {
        for (const char of chunk.toString('utf8')) {
          if (char === '\r' || char === '\n') {
            input.off('data', onData);
            resolve(value);
            return;
          }
          if (char === '\u0003') {
            input.off('data', onData);
            reject(new AbortedError('Password entry cancelled'));
            return;
          }
          if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
          else if (char >= ' ') value += char;
        }
      };
      input.on('data', onData);
    });
  } finally {
    setRawMode(false);
    input.pause();
    output.write('\n');
  }
}
