/**
 * Wake-up (issue 16, item 5): how long after a +3 day wall-clock jump (a host
 * waking from sleep) a keeper serving 1,000 names serves valid certificates
 * again.
 *
 * The keeper runs in a child process under libfaketime with
 * FAKETIME_DONT_FAKE_MONOTONIC=1: its Date moves when the timestamp file is
 * rewritten, its monotonic clock (which timers count) does not, exactly as
 * after a suspend. The issuer is the internal CA with 24 h leaves: after +3
 * days every certificate has expired in the child's view, and the time
 * measured is certkeeper's (noticing, replanning, renewing, swapping), not a
 * remote CA's or its rate limits (1,000 orders through Pebble would measure
 * Pebble and HTTP-01 validation).
 *
 * The client, in this process, sweeps the 1,000 names with 8 handshakes in
 * flight the whole time, and after the jump counts a name as served once its
 * certificate is valid by the child's clock (real time + 3 days). It checks
 * the dates and names itself: the chain cannot verify against this process's
 * real clock, 3 days behind the child's.
 *
 * Baseline, in the same child under the same client load: the issuer's pace,
 * i.e. how long manageSync takes to obtain 1,000 other names from the same
 * internal CA (with 7-day leaves, due after 3.3 days or more, so not after the
 * jump; the 7-day intermediate has 4/7 left, so the CA is not renewed) while
 * the client sweeps the first 1,000. Obtaining a missing certificate and
 * renewing an expired one are both unpaced, with the same order concurrency.
 *
 *   node --import tsx bench/wake-up.ts [--names 1000] [--runs 2] [--timeout-seconds 900]
 *
 * Targets: first name valid ≤ 2 s after the jump; all within the issuer's pace (ratio ≤ 1.2).
 * Needs faketime (apt-get install -y faketime).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { emitResult, loadAverage, median, onTermination } from './lib/report.js';

const DAY = 86_400_000;
const JUMP_MS = 3 * DAY;

const { values: args } = parseArgs({
  options: {
    child: { type: 'string' },
    names: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '2' },
    'timeout-seconds': { type: 'string', default: '900' },
    'client-concurrency': { type: 'string', default: '8' },
  },
});
const N = Number(args.names);
const names = Array.from({ length: N }, (_, i) => `w${i}.wake.test`);
const paceNames = Array.from({ length: N }, (_, i) => `p${i}.wake.test`);
/** Absolute CLOCK_MONOTONIC in ms: the same clock in both processes, untouched by libfaketime here. */
const mono = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

if (args.child !== undefined) await runChild(args.child);
else await runParent();

async function runChild(_root: string): Promise<void> {
  const { CertKeeper } = await import('../src/manager/keeper.js');
  // Not FileStorage: under libfaketime the kernel still stamps files with real time, so lock files made after the
  // jump look days old to the process (a host that really slept has no such gap); both phases use the same storage.
  const { MemoryStorage } = await import('../src/storage/memory.js');
  const { silentLogger } = await import('../test/helpers/logging.js');
  const say = (fact: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(fact)}\n`);
  const keeper = new CertKeeper({
    storage: new MemoryStorage(),
    issuers: [{ type: 'internal', leafLifetimeMs: DAY }],
    challenges: { http01: false },
    logger: silentLogger(),
  });
  let renewed = 0;
  let failed = 0;
  keeper.on('clock_jump', (jump) => say({ event: 'jump', at: mono(), deltaMs: jump.deltaMs }));
  keeper.on('cert_failed', (failure) => {
    failed++;
    process.stderr.write(`cert_failed ${failure.names.join(',')}: ${(failure.error as { code?: string }).code ?? ''} ${failure.error.message}\n`);
  });
  // "status <name>" on stdin: what the keeper knows of a name the client never saw served validly.
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.startsWith('status ')) say({ event: 'status', status: keeper.status(line.slice(7)) });
  });
  keeper.on('cert_renewed', () => {
    renewed++;
    if (renewed === 1) say({ event: 'first_renewed', at: mono() });
    if (renewed === N) say({ event: 'all_renewed', at: mono(), failed });
  });
  await keeper.manageSync(names);
  const server = https.createServer(keeper.tlsOptions({ minVersion: 'TLSv1.3' }), (_req, res) => res.end('ok'));
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1', () => say({ event: 'ready', port: (server.address() as AddressInfo).port }));
  // "pace" on stdin: obtain the baseline's names (while the parent's client keeps sweeping).
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line !== 'pace') return;
    const t0 = mono();
    void keeper.manageSync(paceNames, { issuers: [{ type: 'internal', leafLifetimeMs: 7 * DAY }] }).then(
      () => say({ event: 'paced', paceMs: mono() - t0 }),
      (error: unknown) => say({ event: 'paced', error: String(error) }),
    );
  });
  process.on('SIGTERM', () => {
    server.close();
    void keeper.close().finally(() => process.exit(0));
  });
}

interface RunResult {
  paceMs: number;
  noticedMs: number;
  firstServedMs: number;
  allServedMs: number;
  firstRenewedMs: number;
  allRenewedMs: number;
  failed: number;
}

async function runParent(): Promise<void> {
  const lib = ['x86_64-linux-gnu', 'aarch64-linux-gnu', ''].map((a) => join('/usr/lib', a, 'faketime', 'libfaketime.so.1')).find((p) => existsSync(p));
  if (lib === undefined) {
    console.error('libfaketime not found: apt-get install -y faketime');
    process.exit(2);
  }
  const loadStart = loadAverage();
  const runs: RunResult[] = [];
  const notes: string[] = [];
  let current: { child: ChildProcess; dir: string } | undefined;
  onTermination(() => {
    current?.child.kill('SIGKILL');
    if (current) rmSync(current.dir, { recursive: true, force: true });
  });
  for (let run = 0; run < Number(args.runs); run++) {
    const dir = mkdtempSync(join(tmpdir(), 'certkeeper-wake-'));
    const rc = join(dir, 'faketime.rc');
    writeFileSync(rc, '+0\n');
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', join(dir, 'storage'), '--names', String(N)], {
      env: { ...process.env, LD_PRELOAD: lib, FAKETIME_TIMESTAMP_FILE: rc, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    current = { child, dir };
    const facts = new Map<string, Record<string, unknown>>();
    const waiting = new Map<string, () => void>();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const fact = JSON.parse(line) as Record<string, unknown>;
      facts.set(fact.event as string, fact);
      waiting.get(fact.event as string)?.();
    });
    const deadline = mono() + Number(args['timeout-seconds']) * 1000;
    const fact = (event: string): Promise<Record<string, unknown>> =>
      facts.has(event)
        ? Promise.resolve(facts.get(event)!)
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no "${event}" before the deadline`)), Math.max(0, deadline - mono()));
            waiting.set(event, () => {
              clearTimeout(timer);
              resolve(facts.get(event)!);
            });
          });
    try {
      const ready = await fact('ready');
      const port = ready.port as number;
      // The client load: sweeps the names, 8 handshakes in flight, from now until the end of the run.
      let childOffset = 0;
      let jumpAt: number | undefined;
      let firstServedAt: number | undefined;
      let allServedAt: number | undefined;
      const served = new Set<string>();
      let stop = false;
      const load = (async () => {
        while (!stop && mono() < deadline) {
          let next = 0;
          await Promise.all(
            Array.from({ length: Number(args['client-concurrency']) }, async () => {
              while (!stop && next < names.length) {
                const name = names[next++] as string;
                const counting = jumpAt !== undefined;
                if ((await servesValid(port, name, Date.now() + childOffset)) && counting && !served.has(name)) {
                  served.add(name);
                  firstServedAt ??= mono();
                  if (served.size === N) allServedAt = mono();
                }
              }
            }),
          );
          if (allServedAt !== undefined) stop = true;
        }
      })();
      child.stdin!.write('pace\n');
      const paced = await fact('paced');
      if (paced.error !== undefined) throw new Error(`baseline obtain failed: ${String(paced.error)}`);
      childOffset = JUMP_MS;
      jumpAt = mono();
      writeFileSync(rc, '+3d\n');
      await load;
      if (allServedAt === undefined) {
        const missing = names.filter((n) => !served.has(n));
        child.stdin!.write(`status ${missing[0]}\n`);
        await new Promise((r) => setTimeout(r, 1000));
        console.error(`not served validly: ${missing.slice(0, 5).join(', ')}; status: ${JSON.stringify(facts.get('status')?.status)}`);
        throw new Error(`only ${served.size} of ${N} names served validly before the deadline`);
      }
      const jump = await fact('jump');
      const all = await fact('all_renewed');
      const firstRenewed = await fact('first_renewed');
      runs.push({
        paceMs: paced.paceMs as number,
        noticedMs: (jump.at as number) - jumpAt,
        firstServedMs: (firstServedAt as number) - jumpAt,
        allServedMs: allServedAt - jumpAt,
        firstRenewedMs: (firstRenewed.at as number) - jumpAt,
        allRenewedMs: (all.at as number) - jumpAt,
        failed: all.failed as number,
      });
      console.log(`run ${run + 1}: ${JSON.stringify(runs.at(-1))}`);
    } catch (error) {
      notes.push(`run ${run + 1} failed: ${(error as Error).message}`);
      console.error(error);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      current = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const m = (pick: (r: RunResult) => number): number => median(runs.map(pick));
  const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  const pace = m((r) => r.paceMs);
  const first = m((r) => r.firstServedMs);
  const all = m((r) => r.allServedMs);
  notes.push(
    `${runs.length} runs, ${N} names, internal CA (24 h leaves), +3 d jump under libfaketime (FAKETIME_DONT_FAKE_MONOTONIC=1); medians`,
    `jump noticed after ${s(m((r) => r.noticedMs))} (check interval 1 s); the child swapped in its last renewed certificate after ${s(m((r) => r.allRenewedMs))} (the client's figures are later by up to one sweep of the names); failed renewals ${runs.map((r) => r.failed).join(', ')}`,
    `"served" = a handshake from this process got a certificate valid by the child's clock; load average ${loadStart} -> ${loadAverage()}`,
  );
  emitResult({
    bench: 'wake-up',
    rows: [
      { metric: 'first name valid after the jump (seen by the client)', value: s(first), target: '≤ 2 s', met: first <= 2000 },
      { metric: 'first renewed certificate swapped in (child)', value: s(m((r) => r.firstRenewedMs)), target: '≤ 2 s', met: m((r) => r.firstRenewedMs) <= 2000 },
      { metric: `all ${N} names valid after the jump`, value: s(all), baseline: `${s(pace)} (issuer's pace: obtaining ${N} other names, same load)`, ratio: (all / pace).toFixed(2), target: '≤ 1.2', met: all / pace <= 1.2 },
    ],
    notes,
  });
}

/** One handshake; true when the certificate served for `name` covers it and is valid at `at` (the child's time). */
function servesValid(port: number, name: string, at: number): Promise<boolean> {
  return new Promise((resolve) => {
    // Dates and names are checked here: the chain is valid in the child's time, 3 days ahead of this process's.
    const socket = tls.connect({ host: '127.0.0.1', port, servername: name, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () => {
      const peer = socket.getPeerCertificate();
      const valid = Date.parse(peer.valid_from) <= at && at < Date.parse(peer.valid_to) && (peer.subjectaltname ?? '').split(', ').includes(`DNS:${name}`);
      socket.destroy();
      resolve(valid);
    });
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('error', () => resolve(false));
    socket.on('close', () => resolve(false));
  });
}
