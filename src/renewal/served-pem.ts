/**
 * The served certificate's PEM, for the requests that name it (ARI's
 * renewalInfo, a renewal's `replaces`, a revocation check). A record whose
 * context is cached holds it; a name only listed at start-up (a large
 * manageSync) or evicted from the cache since does not, so it is read from
 * storage. The
 * stored set counts only while it is the certificate the record knows (same
 * serial): a newer one stored by a peer is the renewal path's to adopt.
 */
import type { Logger } from '../logger.js';
import { loadCertificateSet } from '../storage/certificates.js';
import type { Storage } from '../storage/types.js';
import type { ManagedRecord } from './managed-record.js';

export async function servedCertificatePem(record: ManagedRecord, storage: Storage, logger: Logger): Promise<string | undefined> {
  if (record.certPem !== undefined) return record.certPem;
  if (record.issuerKey === undefined || record.serialNumber === undefined) return undefined;
  try {
    const set = await loadCertificateSet(storage, record.issuerKey, record.certName);
    return set.meta.serialNumber === record.serialNumber ? set.certPem : undefined;
  } catch (error) {
    logger.debug({ err: error, names: record.names }, 'the stored certificate could not be read');
    return undefined;
  }
}
