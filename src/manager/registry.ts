/**
 * The managed names: one record per certificate, and an index from every
 * name it covers (wildcards included) to that record. Settings given to
 * manageSync/manageAsync/obtain are resolved once here, into issuers built
 * for them.
 */
import type { ManageSettings, ResolvedConfig } from '../config/index.js';
import { resolveChallenges, resolveKeyType, resolveProfile } from '../config/index.js';
import { InvalidOptionError } from '../errors.js';
import type { IssuerFactory } from '../issuers/factory.js';
import type { Issuer } from '../issuers/types.js';
import { parseIdentifier, wildcardFor, type Identifier } from '../names.js';
import { newRecord, type ManagedRecord, type ResolvedSettings } from '../renewal/managed-record.js';

/** A manageSync/manageAsync entry: one name, or a group of names sharing one certificate. */
export type ManageEntry = string | readonly string[];

export class Registry {
  readonly #config: ResolvedConfig;
  readonly #issuers: IssuerFactory;
  readonly #defaults: ResolvedSettings;
  readonly #records = new Map<string, ManagedRecord>();
  /** Every managed name (and wildcard) -> its certificate's name. */
  readonly #nameIndex = new Map<string, string>();

  constructor(config: ResolvedConfig, issuers: IssuerFactory) {
    this.#config = config;
    this.#issuers = issuers;
    this.#defaults = { issuers: this.#build(config.challenges), keyType: config.keyType };
  }

  /** Records for the entries, not registered (what obtain() uses: it neither serves nor schedules). */
  prepare(entries: readonly ManageEntry[], settings: ManageSettings | undefined): ManagedRecord[] {
    if (!Array.isArray(entries)) throw new InvalidOptionError('names', 'must be an array of names or of name groups');
    const resolved = settings === undefined ? this.#defaults : this.#resolve(settings);
    return entries.map((entry) => {
      const group = typeof entry === 'string' ? [entry] : entry;
      if (!Array.isArray(group) || group.length === 0) throw new InvalidOptionError('names', 'each entry must be a name or a non-empty array of names');
      const identifiers: Identifier[] = [];
      for (const input of group) {
        const id = parseIdentifier(input);
        if (!identifiers.some((i) => i.value === id.value)) identifiers.push(id);
      }
      return newRecord(identifiers, resolved);
    });
  }

  /** Registers the entries; a name already managed keeps its record and takes the new settings. */
  register(entries: readonly ManageEntry[], settings: ManageSettings | undefined): ManagedRecord[] {
    return this.prepare(entries, settings).map((record) => {
      const existing = this.#records.get(record.certName);
      if (existing) {
        existing.settings = record.settings;
        return existing;
      }
      this.#records.set(record.certName, record);
      for (const name of record.names) this.#nameIndex.set(name, record.certName);
      return record;
    });
  }

  /** Forgets a record, unless another one has replaced it meanwhile. */
  unregister(record: ManagedRecord): void {
    if (this.#records.get(record.certName) !== record) return;
    this.#records.delete(record.certName);
    for (const name of record.names) this.#nameIndex.delete(name);
  }

  /** Forgets the certificates covering these names; returns the names no longer served. */
  unmanage(inputs: readonly string[]): { certName: string; names: string[] }[] {
    const removed: { certName: string; names: string[] }[] = [];
    for (const input of inputs) {
      const name = parseIdentifier(input).value;
      const certName = this.#nameIndex.get(name);
      if (!certName) continue;
      const record = this.#records.get(certName);
      const names = record?.names ?? [name];
      this.#records.delete(certName);
      for (const n of names) this.#nameIndex.delete(n);
      removed.push({ certName, names });
    }
    return removed;
  }

  /** The record currently registered under a certificate name. */
  get(certName: string): ManagedRecord | undefined {
    return this.#records.get(certName);
  }

  /** True while `record` is the one registered for its name (not unmanaged or replaced). */
  isCurrent(record: ManagedRecord): boolean {
    return this.#records.get(record.certName) === record;
  }

  /** The record serving a name given by a caller; throws ERR_INVALID_OPTION when it is not managed. */
  recordFor(input: string): ManagedRecord {
    const name = parseIdentifier(input).value;
    const certName = this.#nameIndex.get(name);
    const record = certName !== undefined ? this.#records.get(certName) : undefined;
    if (!record) throw new InvalidOptionError('name', `${name} is not managed by this keeper`);
    return record;
  }

  /** The record serving a (normalised) handshake name, directly or through its wildcard; no I/O. */
  serving(name: string): ManagedRecord | undefined {
    const wildcard = wildcardFor(name);
    const certName = this.#nameIndex.get(name) ?? (wildcard !== undefined ? this.#nameIndex.get(wildcard) : undefined);
    return certName !== undefined ? this.#records.get(certName) : undefined;
  }

  all(): IterableIterator<ManagedRecord> {
    return this.#records.values();
  }

  #resolve(settings: ManageSettings): ResolvedSettings {
    if (typeof settings !== 'object' || settings === null) throw new InvalidOptionError('settings', 'must be an object');
    const profile = resolveProfile(settings.profile, 'settings.profile');
    const challenges = settings.challenges === undefined ? this.#config.challenges : resolveChallenges(settings.challenges, 'settings.challenges');
    let issuers: readonly Issuer[];
    if (settings.issuers !== undefined) {
      if (!Array.isArray(settings.issuers) || settings.issuers.length === 0) throw new InvalidOptionError('settings.issuers', 'must be a non-empty array');
      issuers = this.#issuers.build(settings.issuers, challenges, 'settings.issuers');
    } else if (settings.challenges !== undefined) {
      issuers = this.#build(challenges, 'settings.issuers');
    } else {
      issuers = this.#defaults.issuers;
    }
    return { issuers, keyType: resolveKeyType(settings.keyType, 'settings.keyType') ?? this.#config.keyType, ...(profile ? { profile } : {}) };
  }

  /** The configured issuers (or one ACME issuer) for these challenge settings. */
  #build(challenges: ResolvedConfig['challenges'], option = 'issuers'): readonly Issuer[] {
    return this.#issuers.build(this.#config.issuers ?? [{ type: 'acme' }], challenges, option);
  }
}
