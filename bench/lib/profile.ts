/** Reads the CPU profiles written by --cpu-prof and lists where the busiest thread spent its time. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Self time per function from a .cpuprofile, top `limit`. */
export async function summarizeProfile(dir: string, limit = 15): Promise<string[]> {
  type Profile = {
    nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
    samples: number[];
    timeDeltas: number[];
  };
  // One profile per thread (tsx runs a loader thread too): the main thread's is the busiest one.
  const busy = (p: Profile): number => {
    const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
    return p.samples.filter((id) => !idle.has(id)).length;
  };
  let profile: Profile | undefined;
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'))) {
    const candidate = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
    if (!profile || busy(candidate) > busy(profile)) profile = candidate;
  }
  if (!profile) return ['no profile written'];
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  const deltas = profile.timeDeltas;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = deltas[i] ?? 0;
    total += dt;
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.replace(/^.*\/work\/main\//, '').replace(/^file:\/\//, '')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, us]) => `${(us / 1000).toFixed(0).padStart(6)} ms ${((us / total) * 100).toFixed(1).padStart(5)}%  ${key}`);
}

