/** A command given as one flag value, split into argv (no shell): `--deploy-hook`, `--notify-exec`. */
import { InvalidOptionError } from '../errors.js';

/**
 * Splits a hook given on the command line into argv the way a shell would
 * split words, with '…' and "…" quoting and backslash escapes, and nothing
 * else: no variables, globs, pipes or redirections (there is no shell).
 */
export function splitCommand(text: string, option = '--deploy-hook'): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new InvalidOptionError(option, `has an unterminated ${quote} quote`);
  if (inWord) words.push(word);
  if (words.length === 0) throw new InvalidOptionError(option, 'must name a program');
  return words;
}
