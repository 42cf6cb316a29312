/**
 * The daemon's CertKeeper options: the CLI's own translation of settings
 * into options (cli/keeper.ts: storage, CA, account, key type, DNS-01), with
 * HTTP-01 answered as the config says and no TLS-ALPN-01 (the daemon owns no
 * TLS port; the web server beside it does). In webroot mode the ACME issuer
 * is built here, with the webroot solver, since the keeper's own HTTP-01
 * solver answers through a listener or a handler only.
 */
import { configuredIssuerKey, directoryUrl, keeperOptions, openStorage } from '../cli/keeper.js';
import type { CertKeeperOptions } from '../config/index.js';
import { AcmeIssuer } from '../issuers/acme.js';
import type { Issuer } from '../issuers/types.js';
import type { Logger } from '../logger.js';
import { Dns01Solver } from '../challenges/dns01.js';
import type { ChallengeType, Solver } from '../challenges/types.js';
import type { Storage } from '../storage/types.js';
import type { DaemonConfig } from './config.js';
import { WebrootSolver } from './webroot-solver.js';

/**
 * The one place the daemon turns its `storage` setting into a Storage: a
 * folder or any storage URL, through the CLI's openStorage.
 */
export function openDaemonStorage(config: DaemonConfig, logger: Logger): Promise<Storage> {
  return openStorage(config.settings, logger);
}

export interface DaemonKeeperParts {
  options: CertKeeperOptions;
  /** Storage folder name of the configured issuer (certificates/<issuerKey>/...). */
  issuerKey: string;
  /** Issuers built here, closed by the daemon after the keeper. */
  owned: Issuer[];
}

export function daemonKeeperOptions(config: DaemonConfig, storage: Storage, logger: Logger): DaemonKeeperParts {
  const base = keeperOptions(config.settings, storage as never, logger);
  const dns01 = base.challenges?.dns01;
  const { http01 } = config;
  const options: CertKeeperOptions = {
    ...base,
    challenges: {
      http01:
        http01 === false
          ? false
          : http01.mode === 'listener'
            ? { port: http01.port, host: http01.host, listener: true }
            : // proxy: the daemon's endpoint serves httpChallengeHandler(); webroot: the issuer below has its own solver.
              { port: http01.mode === 'proxy' ? http01.port : config.settings.httpPort, listener: false },
      tlsAlpn01: false,
      ...(dns01 ? { dns01 } : {}),
    },
    ...(config.notify !== undefined ? { notify: config.notify } : {}),
  };
  const owned: Issuer[] = [];
  if (http01 !== false && http01.mode === 'webroot' && config.settings.issuer === 'acme') {
    const webroots = new Map<string, string>();
    for (const cert of config.certificates) for (const name of cert.names) if (cert.webroot !== undefined) webroots.set(name, cert.webroot);
    const solvers: Partial<Record<ChallengeType, Solver>> = { 'http-01': new WebrootSolver({ webrootFor: (name) => webroots.get(name), logger }) };
    if (dns01) solvers['dns-01'] = new Dns01Solver({ provider: dns01.provider, propagation: dns01.propagation, logger });
    const issuer = new AcmeIssuer({
      directoryUrl: directoryUrl(config.settings),
      ...(base.caCertificates !== undefined ? { caCertificates: base.caCertificates } : {}),
      ...(base.email !== undefined ? { email: base.email } : {}),
      agreeToTerms: base.agreeToTerms ?? false,
      storage,
      solvers,
      logger,
    });
    owned.push(issuer);
    options.issuers = [issuer];
  }
  return { options, issuerKey: configuredIssuerKey(config.settings), owned };
}
