/**
 * Writes TXT records for DNS-01. A provider adds or removes exactly one value
 * and never touches other values of the same name: the wildcard and the apex
 * of one name need two values at `_acme-challenge.<name>` at once.
 */
export interface DnsRecord {
  /** Fully qualified record name without trailing dot, e.g. `_acme-challenge.example.com`. */
  name: string;
  /** TXT value (the base64url SHA-256 digest of the key authorization). */
  value: string;
  /** Zone the record lives in, if known (providers may find it themselves). */
  zone?: string | undefined;
  ttl: number;
}

export interface DnsProvider {
  /** A short name for logs and errors, e.g. `rfc2136`. */
  readonly name: string;
  addTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void>;
  removeTxtRecord(record: DnsRecord, signal?: AbortSignal): Promise<void>;
}
