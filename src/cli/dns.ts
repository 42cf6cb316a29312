/**
 * The DNS-01 provider named by the `dns` setting: a JSON object from the
 * config file or CERTKEEPER_DNS, `{ "provider": "rfc2136" | "powerdns" |
 * "exec" | "challtestsrv", ...that provider's options, "propagation": {...} }`.
 * Secrets belong in files the provider reads (rfc2136 `keyFile`) or in the
 * environment, never on the command line.
 */
import type { Dns01Options } from '../config/index.js';
import { ChalltestsrvDnsProvider } from '../dns/challtestsrv.js';
import { ExecDnsProvider } from '../dns/exec.js';
import { PowerDnsProvider } from '../dns/powerdns.js';
import { Rfc2136Provider } from '../dns/rfc2136.js';
import type { DnsProvider } from '../dns/types.js';
import { InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
// The settings check lives apart so settings.ts (loaded by --help) does not load the providers.
import { DNS_PROVIDERS, dnsSettingsFrom } from './dns-settings.js';

export { DNS_PROVIDERS, dnsSettingsFrom };

export function dns01From(settings: Record<string, unknown>, logger: Logger): Dns01Options {
  const { provider: type, propagation, ...options } = settings;
  let provider: DnsProvider;
  switch (type) {
    case 'rfc2136':
      provider = new Rfc2136Provider({ ...(options as unknown as ConstructorParameters<typeof Rfc2136Provider>[0]), logger });
      break;
    case 'powerdns':
      provider = new PowerDnsProvider({ ...(options as unknown as ConstructorParameters<typeof PowerDnsProvider>[0]), logger });
      break;
    case 'exec':
      provider = new ExecDnsProvider({ ...(options as unknown as ConstructorParameters<typeof ExecDnsProvider>[0]), logger });
      break;
    default:
      provider = new ChalltestsrvDnsProvider(options as unknown as ConstructorParameters<typeof ChalltestsrvDnsProvider>[0]);
  }
  if (propagation !== undefined && (typeof propagation !== 'object' || propagation === null)) throw new InvalidOptionError('dns.propagation', 'must be an object');
  return { provider, ...(propagation !== undefined ? { propagation: propagation as Dns01Options['propagation'] & object } : {}) };
}
