/**
 * The handshake section of bench/built.ts: rounds of TLS load against each server in turn, then the rows:
 * certkeeper against one static certificate (the target) and against Node serving the same
 * certificates alone (the SNI floor: what 10,000 contexts cost). Rounds measure the variants back to back,
 * so each ratio is the median of the per-round ratios.
 */
import { cpuMicrosOf, mainThreadMicrosOf } from './peer-tools.js';
import { median, percentile, type ResultRow } from './report.js';
import { tlsLoad } from './tls-load.js';

export interface HandshakeVariant {
  label: string;
  port: number;
  name: (i: number) => string;
  pid: number | undefined;
}

export interface RoundFigures {
  rate: number[];
  cpu: number[];
  main: number[];
  p99: number[];
  failed: number;
}

/** Each round loads every variant once (a short warm-up, then the measured stretch), rotating their order. */
export async function measureRounds(variants: HandshakeVariant[], o: { rounds: number; seconds: number; concurrency: number }): Promise<Map<string, RoundFigures>> {
  const acc = new Map<string, RoundFigures>(variants.map((v) => [v.label, { rate: [], cpu: [], main: [], p99: [], failed: 0 }]));
  for (let round = 0; round < o.rounds; round++) {
    // A different order each round, so no variant always follows another.
    for (const v of [...variants.slice(round % variants.length), ...variants.slice(0, round % variants.length)]) {
      const pid = v.pid as number;
      await tlsLoad({ port: v.port, name: v.name, durationMs: 300, concurrency: o.concurrency, checkName: true });
      const cpu0 = await cpuMicrosOf(pid);
      const main0 = await mainThreadMicrosOf(pid);
      const r = await tlsLoad({ port: v.port, name: v.name, durationMs: o.seconds * 1000, concurrency: o.concurrency, checkName: true });
      const cpu = ((await cpuMicrosOf(pid)) - cpu0) / 1000 / Math.max(r.ok, 1);
      const a = acc.get(v.label) as RoundFigures;
      a.main.push(((await mainThreadMicrosOf(pid)) - main0) / 1000 / Math.max(r.ok, 1));
      a.rate.push((r.ok / r.elapsedMs) * 1000);
      a.cpu.push(cpu);
      a.p99.push(percentile(r.latencies, 99));
      a.failed += r.failed;
      console.log(`  round ${round + 1} ${v.label.padEnd(10)} ${((r.ok / r.elapsedMs) * 1000).toFixed(0).padStart(5)}/s  ${cpu.toFixed(3)} ms CPU each  failed ${r.failed}`);
    }
  }
  return acc;
}

export function handshakeReport(acc: Map<string, RoundFigures>, names: number): { rows: ResultRow[]; notes: string[] } {
  const k = acc.get('certkeeper') as RoundFigures;
  const b = acc.get('static') as RoundFigures;
  const f = acc.get('sni-floor') as RoundFigures;
  const ratio = (x: number[], y: number[]): number => median(x.map((v, i) => v / (y[i] as number)));
  const perRound = (x: number[], y: number[]): string => x.map((v, i) => (v / (y[i] as number)).toFixed(2)).join(' ');
  const rateRatio = ratio(k.rate, b.rate);
  const cpuRatio = ratio(k.cpu, b.cpu);
  const mainRatio = ratio(k.main, b.main);
  const rows: ResultRow[] = [
    { metric: `handshakes/s, ${names} cached names`, value: `${median(k.rate).toFixed(0)}/s`, baseline: `static certificate ${median(b.rate).toFixed(0)}/s`, ratio: rateRatio.toFixed(3), target: '≥ 0.95', met: rateRatio >= 0.95 },
    { metric: 'server CPU per handshake', value: `${median(k.cpu).toFixed(3)} ms`, baseline: `static certificate ${median(b.cpu).toFixed(3)} ms`, ratio: cpuRatio.toFixed(3), target: '≤ 1.05', met: cpuRatio <= 1.05 },
    {
      metric: `server CPU per handshake vs Node serving the same ${names} certificates alone (a Map of contexts in SNICallback)`,
      value: `${median(k.cpu).toFixed(3)} ms`,
      baseline: `Node SNI floor ${median(f.cpu).toFixed(3)} ms (static / floor ${ratio(b.cpu, f.cpu).toFixed(3)})`,
      ratio: ratio(k.cpu, f.cpu).toFixed(3),
    },
    { metric: 'handshakes/s vs the same Node SNI floor', value: `${median(k.rate).toFixed(0)}/s`, baseline: `Node SNI floor ${median(f.rate).toFixed(0)}/s`, ratio: ratio(k.rate, f.rate).toFixed(3) },
    { metric: 'failed handshakes (wrong certificate counts)', value: String(k.failed), baseline: `static ${b.failed}, floor ${f.failed}`, target: '= 0', met: k.failed === 0 },
  ];
  const notes = [
    `handshakes: per-round ratios to static: rate ${perRound(k.rate, b.rate)}, CPU ${perRound(k.cpu, b.cpu)}; to the SNI floor: CPU ${perRound(k.cpu, f.cpu)}; ratio of the medians: rate ${(median(k.rate) / median(b.rate)).toFixed(3)}, CPU ${(median(k.cpu) / median(b.cpu)).toFixed(3)}`,
    `handshakes: main thread only (schedstat, ns-precise; the rest of the process is GC helpers and the libuv pool): certkeeper ${median(k.main).toFixed(3)} ms vs static ${median(b.main).toFixed(3)} ms vs SNI floor ${median(f.main).toFixed(3)} ms per handshake, ratio to static ${mainRatio.toFixed(3)} (per round ${perRound(k.main, b.main)}), to the floor ${ratio(k.main, f.main).toFixed(3)}`,
  ];
  return { rows, notes };
}
