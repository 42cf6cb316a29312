/**
 * keeper.statusHandler(): a node:http listener answering the status report as
 * JSON (`Accept: application/json` or `?format=json`) or as one self-contained
 * HTML page (inline CSS, no script, no external asset: it works offline). It
 * exists only where it is mounted, and only with an `authorize` check or an
 * explicit `public: true`. Every value is escaped.
 *
 * Express: app.get('/certkeeper', handler). Koa: ctx.respond = false; handler(ctx.req, ctx.res).
 * Fastify: reply.hijack(); handler(request.raw, reply.raw).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError } from '../errors.js';
import type { StatusEntry, StatusReport } from './status-report.js';

export interface StatusHandlerOptions {
  /** Decides per request (e.g. checks a token header); false answers 403. Required unless `public: true`. */
  authorize?: (req: IncomingMessage) => boolean | Promise<boolean>;
  /** Serve to anyone who reaches the route (it lists every name you serve). */
  public?: boolean;
}

export type StatusHandler = (req: IncomingMessage, res: ServerResponse) => void;

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // Inline styles only: no script runs, nothing is fetched.
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;

export function createStatusHandler(report: () => StatusReport, options: StatusHandlerOptions, onError: (error: unknown) => void): StatusHandler {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('statusHandler', 'needs { authorize } or { public: true }');
  const { authorize } = options;
  if (authorize !== undefined && typeof authorize !== 'function') throw new InvalidOptionError('statusHandler.authorize', 'must be a function');
  if (options.public !== undefined && typeof options.public !== 'boolean') throw new InvalidOptionError('statusHandler.public', 'must be a boolean');
  if (authorize === undefined && options.public !== true) {
    throw new InvalidOptionError('statusHandler', 'needs an authorize(req) function, or public: true to serve the page to anyone');
  }
  if (authorize !== undefined && options.public === true) throw new InvalidOptionError('statusHandler', 'takes authorize or public: true, not both');

  return (req, res) => {
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', ...SECURITY_HEADERS }).end();
        return;
      }
      if (authorize && (await authorize(req)) !== true) {
        res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('forbidden\n');
        return;
      }
      const data = report();
      const query = new URL(req.url ?? '/', 'http://status.invalid').searchParams.get('format');
      const wantsJson = query === 'json' || (query !== 'html' && /\bapplication\/json\b/.test(req.headers.accept ?? ''));
      const body = wantsJson ? `${JSON.stringify(data, null, 2)}\n` : renderStatusHtml(data);
      res.writeHead(200, {
        'content-type': wantsJson ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        vary: 'accept',
        ...SECURITY_HEADERS,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    })().catch((error: unknown) => {
      onError(error);
      if (!res.headersSent) res.writeHead(500, SECURITY_HEADERS).end();
      else res.destroy();
    });
  };
}

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const DAY_S = 86_400;

function duration(seconds: number): string {
  const sign = seconds < 0 ? '-' : '';
  const s = Math.abs(seconds);
  if (s >= 2 * DAY_S) return `${sign}${Math.floor(s / DAY_S)} d`;
  if (s >= 3600) return `${sign}${Math.floor(s / 3600)} h`;
  return `${sign}${Math.max(0, Math.floor(s / 60))} min`;
}

const when = (isoTime: string | undefined): string => (isoTime ? isoTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, ' UTC') : '—');

const REASONS: Record<NonNullable<StatusEntry['nextRenewalReason']>, string> = {
  lifetime: 'lifetime rule',
  ari: "CA's ARI window",
  emergency: 'emergency: 1/20 of lifetime left',
  retry: 'retry after failure',
  'not-renewed': 'not renewed here (replace the files)',
};

/** green: more than 1/3 of the lifetime left; amber: down to 1/5; red: less, failing, expired or none. */
function health(entry: StatusEntry): 'ok' | 'warn' | 'bad' {
  if (entry.state === 'expired' || entry.state === 'failed' || entry.lifetimeLeft === undefined) return 'bad';
  if (entry.lifetimeLeft < 0.2) return 'bad';
  if (entry.lifetimeLeft < 1 / 3 || entry.failures > 0) return 'warn';
  return 'ok';
}

function timeline(report: StatusReport): string {
  const now = Date.parse(report.generatedAt);
  const ends = report.certificates.flatMap((c) => (c.notAfter ? [Date.parse(c.notAfter)] : []));
  const horizon = Math.max(now + 7 * DAY_S * 1000, ...ends);
  const pct = (t: number): number => Math.min(100, Math.max(0, ((t - now) / (horizon - now)) * 100));
  const rows = report.certificates.map((c) => {
    const name = escapeHtml(c.names[0] ?? '');
    if (!c.notAfter) return `<div class="row"><span class="label" title="${name}">${name}</span><span class="track"><span class="none">no certificate: ${escapeHtml(c.state)}</span></span></div>`;
    const end = pct(Date.parse(c.notAfter));
    const due = c.nextRenewalAt ? pct(Date.parse(c.nextRenewalAt)) : undefined;
    const left = c.expiresInSeconds !== undefined ? duration(c.expiresInSeconds) : '';
    return `<div class="row"><span class="label" title="${name}">${name}</span><span class="track"><span class="bar ${health(c)}" style="width:${end.toFixed(2)}%"></span>${due !== undefined ? `<span class="due" style="left:${due.toFixed(2)}%" title="next renewal ${escapeHtml(when(c.nextRenewalAt))}"></span>` : ''}<span class="left" style="left:${Math.min(end, 88).toFixed(2)}%">${escapeHtml(left)}</span></span></div>`;
  });
  return `<section><h2>Expiry timeline</h2><p class="hint">From now (left) to the last expiry (${escapeHtml(when(new Date(horizon).toISOString()))}); a tick marks the next renewal.</p>${rows.join('')}</section>`;
}

function row(c: StatusEntry): string {
  const cell = (text: string | undefined, cls = ''): string => `<td${cls ? ` class="${cls}"` : ''}>${escapeHtml(text ?? '—')}</td>`;
  const names = c.names.map((n) => `<div>${escapeHtml(n)}</div>`).join('');
  const next = c.nextRenewalReason === 'not-renewed' ? REASONS['not-renewed'] : c.nextRenewalAt ? `${when(c.nextRenewalAt)} (${REASONS[c.nextRenewalReason ?? 'lifetime']})` : undefined;
  const error = c.lastError ? `${c.lastError.code ? `${c.lastError.code}: ` : ''}${c.lastError.message} (${when(c.lastError.at)}${c.failures > 0 ? `, ${c.failures} in a row` : ''})` : undefined;
  const ari = c.ariWindow ? `ARI window ${when(c.ariWindow.start)} – ${when(c.ariWindow.end)}` : undefined;
  return `<tr class="${health(c)}"><td class="names">${names}</td>${cell(c.state, `state ${health(c)}`)}${cell(c.source)}<td>${escapeHtml(c.issuer ?? '—')}${c.profile !== undefined ? `<div class="hint">profile ${escapeHtml(c.profile)}</div>` : ''}</td>${cell(when(c.notBefore))}${cell(when(c.notAfter))}${cell(c.expiresInSeconds !== undefined ? duration(c.expiresInSeconds) : undefined)}<td>${escapeHtml(next ?? '—')}${ari ? `<div class="hint">${escapeHtml(ari)}</div>` : ''}</td>${cell(error, error ? 'error' : '')}</tr>`;
}

export function renderStatusHtml(report: StatusReport): string {
  const counts = { ok: 0, warn: 0, bad: 0 };
  for (const c of report.certificates) counts[health(c)]++;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>certkeeper status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d232a;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.5rem 0 .3rem}.hint{color:#5b6670;font-size:.85em;margin:.1rem 0}
.summary span{display:inline-block;margin-right:1rem;padding:.15rem .6rem;border-radius:1rem;font-weight:600}
.ok{--c:#1f8a4c}.warn{--c:#b7791f}.bad{--c:#c53030}
.summary .ok,.summary .warn,.summary .bad{background:color-mix(in srgb,var(--c) 15%,white);color:var(--c)}
.row{display:flex;align-items:center;margin:.2rem 0}.label{width:16rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding-right:.5rem}
.track{position:relative;flex:1;height:1.2rem;background:#e9edf1;border-radius:3px}
.bar{position:absolute;left:0;top:0;bottom:0;border-radius:3px;background:var(--c)}
.due{position:absolute;top:-3px;bottom:-3px;width:3px;background:#1d232a}
.left{position:absolute;top:0;padding-left:.4rem;font-size:.8em;line-height:1.2rem;white-space:nowrap}
.none{padding-left:.4rem;color:#c53030;font-weight:600;line-height:1.2rem}
table{border-collapse:collapse;width:100%;background:white}th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #e1e5ea}
th{background:#f0f3f6;font-weight:600}td.names{font-weight:600;min-width:13rem;overflow-wrap:anywhere}td.state{color:var(--c);font-weight:600}td.error{color:#c53030;word-break:break-word}
tr.bad td:first-child{border-left:4px solid #c53030}tr.warn td:first-child{border-left:4px solid #b7791f}tr.ok td:first-child{border-left:4px solid #1f8a4c}
</style></head><body>
<h1>certkeeper status</h1>
<p class="hint">${report.certificates.length} certificate(s) at ${escapeHtml(when(report.generatedAt))}. JSON: add <code>?format=json</code>.</p>
<p class="summary"><span class="ok">${counts.ok} healthy</span><span class="warn">${counts.warn} renewing soon</span><span class="bad">${counts.bad} need attention</span></p>
${timeline(report)}
<section><h2>Certificates</h2>
<table><thead><tr><th>Names</th><th>State</th><th>Source</th><th>Issuer</th><th>Not before</th><th>Not after</th><th>Expires in</th><th>Next renewal (why)</th><th>Last error</th></tr></thead>
<tbody>${report.certificates.map(row).join('')}</tbody></table></section>
</body></html>
`;
}
