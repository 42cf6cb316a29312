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
  /**
   * A managed name (or wildcard) -> the certificate serving it, for names served by a record other than the one
   * named after them (a record's other names, a name taken over by a later group). A name not here is served by
   * the record of that name: with a million single-name records this index stays empty (one Map, not two).
   */
  readonly #aliases = new Map<string, string>();

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
      if (typeof entry === 'string') return newRecord([parseIdentifier(entry)], resolved);
      const group = entry;
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
      if (this.#aliases.size > 0) this.#aliases.delete(record.certName);
      for (let i = 1; i < record.names.length; i++) this.#aliases.set(record.names[i] as string, record.certName);
      return record;
    });
  }

  /** Forgets a record, unless another one has replaced it meanwhile. */
  unregister(record: ManagedRecord): void {
    if (this.#records.get(record.certName) !== record) return;
    this.#forget(record);
  }

  /** Forgets the certificates covering these names; returns the names no longer served. */
  unmanage(inputs: readonly string[]): { certName: string; names: string[] }[] {
    const removed: { certName: string; names: string[] }[] = [];
    for (const input of inputs) {
      const record = this.#lookup(parseIdentifier(input).value);
      if (!record) continue;
      this.#forget(record);
      removed.push({ certName: record.certName, names: record.names });
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
    const record = this.#lookup(name);
    if (!record) throw new InvalidOptionError('name', `${name} is not managed by this keeper`);
    return record;
  }

  /**
   * The cache let go of a record's context: the record gives up its chain too (read from storage when next
   * needed), so a fleet whose names are loaded once each does not keep every chain it ever served. Returns
   * that record, or undefined when the evicted context was not the one a record serves.
   */
  contextEvicted(materialId: string, names: readonly string[]): ManagedRecord | undefined {
    const record = names[0] !== undefined ? this.serving(names[0]) : undefined;
    if (record?.materialId !== materialId) return undefined;
    record.certPem = undefined;
    return record;
  }

  /** The record serving a (normalised) handshake name, directly or through its wildcard; no I/O. */
  serving(name: string): ManagedRecord | undefined {
    const record = this.#lookup(name);
    if (record) return record;
    const wildcard = wildcardFor(name);
    return wildcard !== undefined ? this.#lookup(wildcard) : undefined;
  }

  /** The record serving a normalised name (or wildcard) directly. */
  #lookup(name: string): ManagedRecord | undefined {
    return this.#records.get(this.#aliases.size > 0 ? (this.#aliases.get(name) ?? name) : name);
  }

  /** Removes a record and the aliases that still point at it. */
  #forget(record: ManagedRecord): void {
    this.#records.delete(record.certName);
    if (this.#aliases.size === 0) return;
    for (const name of record.names) if (this.#aliases.get(name) === record.certName) this.#aliases.delete(name);
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
