/**
 * A strict parser for the Prometheus text exposition format (0.0.4), enough to
 * reject anything a real scraper would: every sample belongs to the family
 * declared by the TYPE line before it, names and label names match the
 * grammar, label values use only the three escapes, values are floats.
 */
export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: string;
  help: string | undefined;
  samples: ParsedSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a line feed');
  const families = new Map<string, ParsedFamily>();
  let current: ParsedFamily | undefined;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const [, kind, name, ...rest] = line.split(' ');
      if (!name || !METRIC_NAME.test(name)) throw new Error(`bad metric name, ${where}`);
      let family = families.get(name);
      if (!family) {
        if (current && current.name !== name && current.samples.length === 0 && families.get(current.name) === current) {
          // an earlier family with no samples is fine
        }
        family = { name, type: 'untyped', help: undefined, samples: [] };
        families.set(name, family);
      } else if (family !== current) {
        throw new Error(`metadata for ${name} is not contiguous, ${where}`);
      }
      if (kind === 'TYPE') {
        const type = rest.join(' ');
        if (!TYPES.has(type)) throw new Error(`unknown type, ${where}`);
        if (family.samples.length > 0) throw new Error(`TYPE after samples, ${where}`);
        family.type = type;
      } else {
        if (family.help !== undefined) throw new Error(`second HELP, ${where}`);
        family.help = rest.join(' ');
      }
      current = family;
      return;
    }
    if (line.startsWith('#') || line.trim() === '') return;
    const sample = parseSample(line, where);
    if (!current || !belongsTo(current, sample.name)) throw new Error(`sample outside its family, ${where}`);
    const key = JSON.stringify([sample.name, ...Object.entries(sample.labels).sort()]);
    if (current.samples.some((s) => JSON.stringify([s.name, ...Object.entries(s.labels).sort()]) === key)) throw new Error(`duplicate series, ${where}`);
    current.samples.push(sample);
  });
  return families;
}

/** A histogram's samples are <name>_bucket, _sum and _count; a summary's <name>, _sum and _count. */
function belongsTo(family: ParsedFamily, sampleName: string): boolean {
  if (sampleName === family.name) return family.type !== 'histogram';
  if (family.type === 'histogram') return [`${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`].includes(sampleName);
  if (family.type === 'summary') return [`${family.name}_sum`, `${family.name}_count`].includes(sampleName);
  return false;
}

function parseSample(line: string, where: string): ParsedSample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) throw new Error(`bad sample name, ${where}`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const labelMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!labelMatch || !LABEL_NAME.test(labelMatch[0])) throw new Error(`bad label name, ${where}`);
      const label = labelMatch[0];
      i += label.length;
      if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`expected =", ${where}`);
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) throw new Error(`unterminated label value, ${where}`);
        if (c === '"') break;
        if (c === '\\') {
          const next = line[i + 1];
          if (next === '\\') value += '\\';
          else if (next === '"') value += '"';
          else if (next === 'n') value += '\n';
          else throw new Error(`bad escape, ${where}`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      if (Object.hasOwn(labels, label)) throw new Error(`duplicate label, ${where}`);
      labels[label] = value;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`expected , or }, ${where}`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`expected a space before the value, ${where}`);
  const [valueText, timestamp, extra] = line.slice(i + 1).split(' ');
  if (extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`trailing garbage, ${where}`);
  if (valueText === undefined || !/^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/.test(valueText)) {
    throw new Error(`bad value, ${where}`);
  }
  const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
  return { name, labels, value };
}
