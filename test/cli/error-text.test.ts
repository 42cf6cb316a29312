import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { describeError, errorLines, flagForOption } from '../../src/cli/errors.js';
import { humanLogLine } from '../../src/cli/io.js';
import { ChallengeListenerError, InvalidOptionError, StorageError, TermsNotAgreedError } from '../../src/errors.js';

describe('CLI wording of errors', () => {
  test('library option names map to CLI flags; unknown ones are left as they are', () => {
    assert.equal(flagForOption('ca'), '--ca');
    assert.equal(flagForOption('agreeToTerms'), '--agree-to-terms');
    assert.equal(flagForOption('http01.port'), '--http-port');
    assert.equal(flagForOption('caCertificates'), '--ca-root');
    assert.equal(flagForOption('dns'), undefined, 'dns has no flag');
    assert.equal(flagForOption('renewalPacing.minIdleCpus'), undefined);
    assert.equal(errorLines(new InvalidOptionError('x', 'bad')), 'certkeeper: Invalid option "x": bad [ERR_INVALID_OPTION]\n');
  });

  test('terms not agreed: the CLI names --agree-to-terms, the library message is unchanged', () => {
    const error = new TermsNotAgreedError('https://ca.test/dir', 'https://ca.test/tos');
    assert.match(error.message, /set agreeToTerms: true/);
    assert.equal(
      errorLines(error),
      'certkeeper: The CA at https://ca.test/dir requires accepting its terms of service (https://ca.test/tos) [ERR_TERMS_NOT_AGREED]\n' +
        '  hint: read them, then run again with --agree-to-terms (or CERTKEEPER_AGREE_TO_TERMS=1)\n',
    );
    // The same wording from the pino-serialized form a log record carries.
    assert.deepEqual(describeError(JSON.parse(JSON.stringify({ ...error, message: error.message }))), describeError(error));
  });

  test('a listener that cannot bind gets the port flags as remedy', () => {
    assert.match(describeError(new ChallengeListenerError('0.0.0.0:80', 'EACCES')).remedy ?? '', /--http-port/);
  });

  test('a pino record becomes one human line: level, message, names, error and code, no stack', () => {
    const error = new StorageError('disk full\nsecond line');
    const record = { level: 40, msg: 'issuer failed', names: ['a.test', 'b.test'], err: { type: 'StorageError', message: error.message, stack: error.stack, code: error.code } };
    assert.equal(humanLogLine(`${JSON.stringify(record)}\n`), 'certkeeper: warning: issuer failed (a.test, b.test): disk full second line [ERR_STORAGE]\n');
    assert.equal(humanLogLine(JSON.stringify({ level: 30, msg: 'renewed' })), 'certkeeper: renewed\n');
  });
});
