/** A keeper over a fabricated store: internal issuer (no network), FileStorage, silent logs. */
import { CertKeeper } from '../../src/manager/keeper.js';
import type { CertKeeperOptions } from '../../src/config/index.js';
import { FileStorage } from '../../src/storage/file.js';
import { silentLogger } from '../../test/helpers/logging.js';

export function benchKeeper(root: string, extra: CertKeeperOptions = {}): CertKeeper {
  return new CertKeeper({
    storage: new FileStorage({ root }),
    issuers: [{ type: 'internal' }],
    // No CA here: no HTTP-01 listener; TLS-ALPN-01 stays on (it answers through tlsOptions(), as in production).
    challenges: { http01: false },
    logger: silentLogger(),
    ...extra,
  });
}

/** manageSync in groups at most `limit` long, so each group is loaded eagerly (contexts built now, not on first handshake). */
export async function manageEagerly(keeper: CertKeeper, names: readonly string[], limit = 1000): Promise<void> {
  for (let i = 0; i < names.length; i += limit) await keeper.manageSync(names.slice(i, i + limit));
}
