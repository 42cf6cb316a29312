import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { Progress } from '../../src/cli/progress.js';
import { promptHidden } from '../../src/cli/prompt.js';
import { InvalidOptionError } from '../../src/errors.js';

function capture(isTTY: boolean): { stream: PassThrough & { isTTY?: boolean }; text: () => string } {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean };
  stream.isTTY = isTTY;
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

describe('terminal output and input', () => {
  test('progress: a marked line per name on a TTY, timestamped log lines otherwise', async () => {
    const tty = capture(true);
    const p = new Progress(tty.stream, 'obtaining');
    p.start('a.test');
    p.done('a.test', 'obtained');
    p.fail('b.test', new InvalidOptionError('x', 'bad'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(tty.text().split('\n').filter(Boolean), ['  …  a.test: obtaining', '  ✓  a.test: obtained', '  ✗  b.test: Invalid option "x": bad (ERR_INVALID_OPTION)']);

    const plain = capture(false);
    const q = new Progress(plain.stream, 'obtaining');
    q.start('a.test');
    q.done('a.test', 'obtained');
    await new Promise((r) => setImmediate(r));
    const lines = plain.text().split('\n').filter(Boolean);
    assert.equal(lines.length, 2);
    assert.match(lines[0] as string, /^\d{4}-\d\d-\d\dT\S+Z a\.test obtaining started$/);
    assert.match(lines[1] as string, /^\S+Z a\.test obtained$/);
  });

  test('password prompt: raw mode, no echo, backspace works, raw mode restored', async () => {
    const input = new PassThrough() as PassThrough & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
    const modes: boolean[] = [];
    input.isTTY = true;
    input.setRawMode = (mode: boolean) => modes.push(mode);
    const output = capture(true);
    const answer = promptHidden('Password: ', input, output.stream);
    input.write('s3cx\u007fret\r');
    assert.equal(await answer, 's3cret');
    await new Promise((r) => setImmediate(r));
    assert.equal(output.text(), 'Password: \n');
    assert.deepEqual(modes, [true, false]);
  });

  test('password prompt without a terminal is a usage error', async () => {
    const input = new PassThrough() as PassThrough & { isTTY?: boolean };
    await assert.rejects(promptHidden('Password: ', input, capture(false).stream), (e: unknown) => e instanceof InvalidOptionError);
  });
});
