/**
 * Turns issuer specs (`{ type: 'acme' | 'internal' }` or Issuer objects) into
 * issuers wired to the keeper's challenge solvers, and owns what it builds.
 * The keeper's HTTP-01 and TLS-ALPN-01 solvers are shared by every ACME
 * issuer: one port-80 listener, one challenge store behind tlsOptions().
 */
import type { ResolvedChallenges, ResolvedConfig, IssuerSpec } from '../config/index.js';
import { validateIssuer } from '../config/index.js';
import { Dns01Solver } from '../challenges/dns01.js';
import { Http01Solver } from '../challenges/http01.js';
import { TlsAlpn01Solver } from '../challenges/tls-alpn01.js';
import type { ChallengeType, Solver } from '../challenges/types.js';
import { Lifecycle } from '../lifecycle.js';
import { pemCertificates } from '../validate.js';
import type { Storage } from '../storage/types.js';
import { AcmeIssuer } from './acme.js';
import { InternalIssuer } from './internal.js';
import type { CpuOffload } from '../cpu/offload.js';
import type { Issuer } from './types.js';

export class IssuerFactory {
  /** Undefined when HTTP-01 is disabled in the keeper's options. */
  readonly http01: Http01Solver | undefined;
  readonly tlsAlpn01: TlsAlpn01Solver;
  readonly #config: ResolvedConfig;
  readonly #storage: Storage;
  readonly #owned = new Set<Issuer>();
  /** ACME issuers for the keeper's own challenge settings, by what makes them differ. */
  readonly #shared = new Map<string, AcmeIssuer>();

  readonly #offload: CpuOffload;
  readonly #lifecycle = new Lifecycle('IssuerFactory', () => this.#release());

  constructor(config: ResolvedConfig, storage: Storage, offload: CpuOffload) {
    this.#config = config;
    this.#storage = storage;
    this.#offload = offload;
    const { http01, tlsAlpn01 } = config.challenges;
    this.http01 =
      http01 === false
        ? undefined
        : new Http01Solver({ storage, port: http01.port, host: http01.host, listener: http01.listener, logger: config.logger });
    this.tlsAlpn01 = new TlsAlpn01Solver({
      listener: tlsAlpn01 !== false && tlsAlpn01.listener,
      ...(tlsAlpn01 !== false ? { port: tlsAlpn01.port, host: tlsAlpn01.host } : {}),
      logger: config.logger,
    });
  }

  build(specs: readonly IssuerSpec[], challenges: ResolvedChallenges, option: string): Issuer[] {
    this.#lifecycle.assertOpen();
    return specs.map((spec, index) => {
      validateIssuer(spec, `${option}[${index}]`);
      if (!('type' in spec)) return spec;
      if (spec.type === 'internal') {
        return this.#own(
          new InternalIssuer({
            storage: this.#storage,
            name: spec.name,
            leafLifetimeMs: spec.leafLifetimeMs,
            clock: this.#config.clock,
            logger: this.#config.logger,
            offload: this.#offload,
          }),
        );
      }
      const config = this.#config;
      const solvers = this.#solversFor(challenges);
      // A spec may give one PEM string or several (validated by the issuer's resolver): always a list here.
      const caCertificates = spec.caCertificates !== undefined ? [...pemCertificates(spec.caCertificates, 'issuers[].caCertificates')] : [...config.caCertificates];
      const acme = {
        ca: spec.ca ?? config.ca,
        email: spec.email ?? config.email,
        agreeToTerms: spec.agreeToTerms ?? config.agreeToTerms,
        externalAccountBinding: spec.externalAccountBinding ?? config.externalAccountBinding,
        preferredChain: spec.preferredChain ?? config.preferredChain,
        profile: spec.profile ?? config.profile,
      };
      // Per-call challenge settings get their own issuer; the keeper's own settings share one per CA/account.
      const shareable = challenges === config.challenges;
      const cacheKey = JSON.stringify({ ...acme, caCertificates, externalAccountBinding: acme.externalAccountBinding?.kid, solvers: Object.keys(solvers) });
      const cached = shareable ? this.#shared.get(cacheKey) : undefined;
      if (cached) return cached;
      const issuer = new AcmeIssuer({
        ...(/^https?:\/\//i.test(acme.ca) ? { directoryUrl: acme.ca } : { ca: acme.ca as never }),
        ...(caCertificates.length > 0 ? { caCertificates: [...caCertificates] } : {}),
        ...(acme.email !== undefined ? { email: acme.email } : {}),
        agreeToTerms: acme.agreeToTerms,
        ...(acme.externalAccountBinding !== undefined ? { externalAccountBinding: { ...acme.externalAccountBinding } } : {}),
        ...(acme.preferredChain !== undefined ? { preferredChain: acme.preferredChain } : {}),
        ...(acme.profile !== undefined ? { profile: typeof acme.profile === 'string' ? acme.profile : [...acme.profile] } : {}),
        storage: this.#storage,
        solvers,
        challengePreference: [...challenges.preference],
        logger: config.logger,
        // Protocol waits (polling, Retry-After) run on real time; the injected clock drives scheduling only.
      });
      this.#own(issuer);
      // A peer process sharing storage may start challenges this one must answer.
      if (solvers['http-01']) this.http01?.addIssuerKey(issuer.key);
      if (shareable) this.#shared.set(cacheKey, issuer);
      return issuer;
    });
  }

  /** Closes every issuer built here, then the solvers: an order stopped by its issuer's close still cleans up its challenges. */
  close(): Promise<void> {
    return this.#lifecycle.close();
  }

  async #release(): Promise<void> {
    await Promise.allSettled([...this.#owned].map((issuer) => issuer.close?.()));
    await Promise.allSettled([this.http01?.close(), this.tlsAlpn01.close()]);
  }

  #own<T extends Issuer>(issuer: T): T {
    this.#owned.add(issuer);
    return issuer;
  }

  #solversFor(challenges: ResolvedChallenges): Partial<Record<ChallengeType, Solver>> {
    const solvers: Partial<Record<ChallengeType, Solver>> = {};
    if (challenges.http01 !== false && this.http01) solvers['http-01'] = this.http01;
    if (challenges.tlsAlpn01 !== false) solvers['tls-alpn-01'] = this.tlsAlpn01;
    if (challenges.dns01 !== false) {
      solvers['dns-01'] = new Dns01Solver({ provider: challenges.dns01.provider, propagation: challenges.dns01.propagation, logger: this.#config.logger });
    }
    return solvers;
  }
}
