/**
 * User and group names to numeric ids for the files the daemon writes. Node
 * has no getpwnam(), so the local databases are read (/etc/passwd, /etc/group);
 * a name that only a directory service knows must be given as a number.
 */
import { readFileSync } from 'node:fs';
import { InvalidOptionError } from '../errors.js';

export interface AccountDatabases {
  passwd: string;
  group: string;
}

/** A uid (owner) or gid (group): a non-negative integer, a string of digits, or a name in the database. */
export function accountId(value: unknown, option: string, kind: 'user' | 'group', databases?: AccountDatabases): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) throw new InvalidOptionError(option, `must be a ${kind} name or a non-negative integer id`);
    return value;
  }
  if (typeof value !== 'string' || value.length === 0) throw new InvalidOptionError(option, `must be a ${kind} name or a non-negative integer id`);
  if (/^\d+$/.test(value)) return Number(value);
  const text = databases ? databases[kind === 'user' ? 'passwd' : 'group'] : readDatabase(kind === 'user' ? '/etc/passwd' : '/etc/group');
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name === value && id !== undefined && /^\d+$/.test(id)) return Number(id);
  }
  throw new InvalidOptionError(option, `no ${kind} named ${JSON.stringify(value)} on this machine (give its numeric id if a directory service knows it)`);
}

function readDatabase(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
