/** The `dns` setting's shape check (see dns.ts): without the providers, so parsing settings stays cheap. */
import { InvalidOptionError } from '../errors.js';

export const DNS_PROVIDERS = ['rfc2136', 'powerdns', 'exec', 'challtestsrv'] as const;

export function dnsSettingsFrom(value: unknown, from: string): Record<string, unknown> {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch (error) {
      throw new InvalidOptionError(from, `must be a JSON object: ${(error as Error).message}`, { cause: error });
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidOptionError(from, 'must be a JSON object with a "provider"');
  const provider = (parsed as Record<string, unknown>).provider;
  if (!(DNS_PROVIDERS as readonly unknown[]).includes(provider)) throw new InvalidOptionError(`${from}.provider`, `must be one of ${DNS_PROVIDERS.join(', ')}`);
  return parsed as Record<string, unknown>;
}
