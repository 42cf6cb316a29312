/** What every doctor check returns: pass / warn / fail / skip with a one-line remedy. */
import { CertKeeperError } from '../errors.js';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** What was checked, e.g. `ca-directory`, `caa`. */
  check: string;
  /** The name or port the check was about, if any. */
  subject?: string | undefined;
  status: CheckStatus;
  detail: string;
  /** One line saying what to do; set for warn and fail. */
  remedy?: string | undefined;
}

/** True when any check failed (the CLI exits 1). */
export function doctorFailed(results: readonly CheckResult[]): boolean {
  return results.some((r) => r.status === 'fail');
}

/** An error's message, with its code when certkeeper threw it (the code is what a reader searches for). */
export function errorMessage(error: unknown): string {
  return error instanceof CertKeeperError ? `${error.message} (${error.code})` : (error as Error).message;
}
