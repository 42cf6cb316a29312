/**
 * A strict reader of the OpenMetrics 1.0 text format, for what certkeeper
 * exports (gauges and counters): the exposition ends with `# EOF`, has no
 * blank lines, a counter family is declared without `_total` and its samples
 * carry it, a gauge's samples carry the family name. Sample lines are then
 * checked by the Prometheus text parser (same label and value grammar), so the
 * result is keyed by sample name, as parsePrometheusText's is.
 */
import { parsePrometheusText, type ParsedFamily } from './prometheus-parser.js';

const META = /^# (HELP|TYPE) (\S+)(?: (.*))?$/;

export function parseOpenMetricsText(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n# EOF\n')) throw new Error('an OpenMetrics exposition ends with "# EOF" and a line feed');
  const lines = text.slice(0, -'# EOF\n'.length).split('\n');
  lines.pop();
  const types = new Map<string, string>();
  for (const line of lines) {
    const meta = META.exec(line);
    if (meta?.[1] !== 'TYPE') continue;
    const [, , name, type = ''] = meta as unknown as [string, string, string, string | undefined];
    if (types.has(name)) throw new Error(`second TYPE for ${name}`);
    if (type === 'counter' && name.endsWith('_total')) throw new Error(`counter family ${name} declared with its _total suffix`);
    types.set(name, type);
  }
  let family: string | undefined;
  const translated = lines.map((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line === '') throw new Error(`blank line, ${where}`);
    const meta = META.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta as unknown as [string, string, string, string | undefined];
      family = name;
      return `# ${kind} ${types.get(name) === 'counter' ? `${name}_total` : name} ${rest}`;
    }
    if (line.startsWith('#')) throw new Error(`unexpected comment, ${where}`);
    if (family === undefined) throw new Error(`sample before any family, ${where}`);
    const sampleName = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    // A counter's one sample is <family>_total; a histogram's and a summary's carry their own suffixes.
    const type = types.get(family);
    const expected =
      type === 'counter' ? [`${family}_total`]
      : type === 'histogram' ? [`${family}_bucket`, `${family}_sum`, `${family}_count`]
      : type === 'summary' ? [family, `${family}_sum`, `${family}_count`]
      : [family];
    if (sampleName === undefined || !expected.includes(sampleName)) throw new Error(`sample ${String(sampleName)} does not belong to family ${family}, ${where}`);
    return line;
  });
  return parsePrometheusText(translated.length > 0 ? `${translated.join('\n')}\n` : '');
}
