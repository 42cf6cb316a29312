/**
 * Server options for tls.createServer, https.createServer and
 * http2.createSecureServer, composed with the user's own options.
 */
import type tls from 'node:tls';
import { InvalidOptionError } from '../errors.js';
import type { Logger } from '../logger.js';
import { attachAddressContexts } from './address-contexts.js';
import { alpnProtocolNames, createAlpnCallback, type AlpnChallengeProvider } from './alpn.js';
import type { ContextCache, ContextOptions } from './context-cache.js';
import { createSniCallback } from './sni.js';

/**
 * Options that shape a secure context rather than a certificate. Node takes
 * the client-CA store, ciphers and versions of a connection from the context
 * SNICallback returns (checked on Node 20.20: a client certificate is
 * verified against the SNI context's `ca`), so every cached context carries them.
 */
export const CONTEXT_OPTION_KEYS = [
  'ca',
  'ciphers',
  'crl',
  'dhparam',
  'ecdhCurve',
  'honorCipherOrder',
  'maxVersion',
  'minVersion',
  'secureOptions',
  'secureProtocol',
  'sessionIdContext',
  'sessionTimeout',
  'sigalgs',
  'ticketKeys',
] as const satisfies readonly (keyof tls.SecureContextOptions)[];

export interface BuildTlsOptionsExtras {
  alpnChallenges?: AlpnChallengeProvider | undefined;
  onError?: ((error: Error, servername: string) => void) | undefined;
  logger?: Logger | undefined;
}

/** The secure-context subset of a user's server options. */
export function pickContextOptions(options: tls.TlsOptions): ContextOptions {
  const out: Record<string, unknown> = {};
  for (const key of CONTEXT_OPTION_KEYS) {
    if (options[key] !== undefined) out[key] = options[key];
  }
  return out as ContextOptions;
}

function sameContextOptions(a: ContextOptions, b: ContextOptions): boolean {
  return CONTEXT_OPTION_KEYS.every((key) => a[key] === b[key]);
}

/**
 * Returns new server options (the caller's object is not changed) with
 * SNICallback and ALPNCallback from certkeeper, the default certificate as
 * `cert`/`key` for clients without SNI (unless the user gave their own), and
 * everything else the user set. Node forbids ALPNProtocols together with
 * ALPNCallback, so the user's ALPNProtocols become the callback's preference
 * list. For http2.createSecureServer pass `ALPNProtocols: ['h2']` (plus
 * 'http/1.1' with allowHTTP1). The user's context options (ciphers, ca,
 * minVersion...) are applied to the cache; one cache holds one set of them.
 */
export function buildTlsOptions(cache: ContextCache, userOptions: tls.TlsOptions = {}, extras: BuildTlsOptionsExtras = {}): tls.TlsOptions {
  if (typeof userOptions !== 'object' || userOptions === null) throw new InvalidOptionError('tlsOptions', 'must be an object');
  if (userOptions.SNICallback !== undefined) {
    throw new InvalidOptionError('SNICallback', 'certkeeper provides the SNICallback; add certificates to certkeeper instead');
  }
  if (userOptions.ALPNCallback !== undefined) {
    throw new InvalidOptionError('ALPNCallback', 'certkeeper provides the ALPNCallback (for TLS-ALPN-01); list your protocols in ALPNProtocols');
  }
  const { ALPNProtocols, ...rest } = userOptions;
  const protocols = alpnProtocolNames(ALPNProtocols);
  if (ALPNProtocols !== undefined && protocols === undefined) {
    throw new InvalidOptionError('ALPNProtocols', 'must be an array of strings or Buffers, or a Buffer in wire format');
  }

  const contextOptions = pickContextOptions(userOptions);
  if (!sameContextOptions(cache.contextOptions, contextOptions)) {
    if (Object.keys(cache.contextOptions).length > 0) {
      extras.logger?.warn({ component: 'tls' }, 'TLS context options changed by a second tlsOptions() call; every server sharing this cache now uses the new ones');
    }
    // Throws on invalid options; from here on new handshakes use them (see setContextOptions).
    cache.setContextOptions(contextOptions).catch((error: unknown) => extras.logger?.error({ err: error }, 'TLS context rebuild failed'));
  }

  const options: tls.TlsOptions = {
    ...rest,
    SNICallback: createSniCallback(cache, {
      alpnChallenges: extras.alpnChallenges,
      onError: extras.onError,
      logger: extras.logger,
    }) as tls.TlsOptions['SNICallback'],
    ALPNCallback: createAlpnCallback(protocols, extras.alpnChallenges) as tls.TlsOptions['ALPNCallback'],
  };
  const fallback = cache.defaultMaterial;
  if (fallback !== undefined && rest.cert === undefined && rest.key === undefined && rest.pfx === undefined) {
    options.cert = fallback.certPem;
    options.key = fallback.keyPem;
  }
  return options;
}

/**
 * Keeps a server's own context (used for clients that send no SNI, which Node
 * never passes to SNICallback) in step with the cache: a new default
 * certificate or new context options (a reloaded client-CA bundle) reach it
 * through server.setSecureContext. A client without SNI connecting to an IP
 * address with a certificate in the cache gets that certificate. Returns a
 * function that detaches; the server's 'close' also detaches.
 */
export function attachServer(server: tls.Server, cache: ContextCache, userOptions: tls.TlsOptions = {}): () => void {
  const update = (): void => {
    const fallback = cache.defaultMaterial;
    const own = userOptions.cert !== undefined || userOptions.key !== undefined || userOptions.pfx !== undefined;
    server.setSecureContext({
      ...cache.contextOptions,
      ...(own
        ? pickCertificateOptions(userOptions)
        : fallback !== undefined
          ? { cert: fallback.certPem, key: fallback.keyPem }
          : {}),
    });
  };
  const unsubscribe = cache.onServerContextChange(update);
  // Clients of https://<IP>/ send no SNI: they get the certificate of the address they connected to.
  const detachAddresses = attachAddressContexts(server, (address) => cache.exactContext(address));
  const detach = (): void => {
    unsubscribe();
    detachAddresses();
    server.off('close', detach);
  };
  server.on('close', detach);
  return detach;
}

function pickCertificateOptions(options: tls.TlsOptions): tls.SecureContextOptions {
  const out: tls.SecureContextOptions = {};
  if (options.cert !== undefined) out.cert = options.cert;
  if (options.key !== undefined) out.key = options.key;
  if (options.pfx !== undefined) out.pfx = options.pfx;
  if (options.passphrase !== undefined) out.passphrase = options.passphrase;
  return out;
}
