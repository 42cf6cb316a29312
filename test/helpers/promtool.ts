import { spawn } from 'node:child_process';
import { findBinary } from './system.js';

export interface PromtoolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs promtool with `input` on stdin (no shell); resolves with its exit code and output. */
export function promtool(args: readonly string[], input = ''): Promise<PromtoolResult> {
  const binary = findBinary('promtool');
  if (!binary) throw new Error('promtool is not installed');
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
