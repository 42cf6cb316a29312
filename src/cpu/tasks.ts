/** The CPU-heavy pure functions a CpuOffload may run on its worker thread. */
import { createKeyAndCsr, type KeyAndCsr } from '../acme/csr.js';
import type { KeyType } from '../kinds.js';
import { signLeaf, type LeafSigningRequest } from '../issuers/leaf-signing.js';
import type { Identifier } from '../names.js';

export interface CpuTasks {
  keyAndCsr(input: { identifiers: Identifier[]; keyType: KeyType }): Promise<KeyAndCsr>;
  signLeaf(input: LeafSigningRequest): Promise<Uint8Array>;
}

export type CpuTaskName = keyof CpuTasks;

export const cpuTasks: CpuTasks = {
  keyAndCsr: ({ identifiers, keyType }) => createKeyAndCsr(identifiers, keyType),
  signLeaf: (input) => signLeaf(input),
};

/** What crosses the thread boundary for an error: enough to rebuild a CertKeeperError of the same code. */
export interface SerializedError {
  name: string;
  code: string | undefined;
  message: string;
}

export type WorkerRequest = { id: number; task: CpuTaskName; input: unknown };
export type WorkerResponse = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: SerializedError } | { ready: true };
