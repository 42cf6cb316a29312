/**
 * acme-client's `auto()` used directly, as its README shows, for bench/obtain.ts.
 * Runs in its own process: creating a certkeeper AcmeIssuer changes
 * acme-client's process-wide settings (shared axios instance, retries,
 * logger), so the comparison needs an untouched acme-client. Pebble's HTTPS
 * CA is trusted the way a user would do it, through NODE_EXTRA_CA_CERTS.
 *
 *   node --import tsx bench/lib/acme-client-auto.ts <directoryUrl> <http01Port> <concurrency> <name>...
 *
 * Prints one JSON line: { ms, ok, failed, errors }.
 */
import http from 'node:http';
import acme from 'acme-client';

const [directoryUrl, portText, concurrencyText, ...names] = process.argv.slice(2);
if (!directoryUrl || !portText || !concurrencyText || names.length === 0) {
  console.error('usage: acme-client-auto.ts <directoryUrl> <http01Port> <concurrency> <name>...');
  process.exit(2);
}

// The HTTP-01 answers: token -> key authorization, served on the port Pebble validates against.
const tokens = new Map<string, string>();
const server = http.createServer((req, res) => {
  const token = req.url?.startsWith('/.well-known/acme-challenge/') ? req.url.slice('/.well-known/acme-challenge/'.length) : undefined;
  const body = token !== undefined ? tokens.get(token) : undefined;
  if (body === undefined) res.writeHead(404).end();
  else res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
});
await new Promise<void>((resolve) => server.listen(Number(portText), '127.0.0.1', () => resolve()));

const started = performance.now();
const client = new acme.Client({ directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey('P-256') });
let ok = 0;
const errors: string[] = [];
let next = 0;
const worker = async (): Promise<void> => {
  while (next < names.length) {
    const name = names[next++] as string;
    try {
      const [, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
      await client.auto({
        csr,
        email: 'bench@example.test',
        termsOfServiceAgreed: true,
        // The names exist only in the test DNS, so acme-client's own pre-check over the system resolver would fail.
        skipChallengeVerification: true,
        challengePriority: ['http-01'],
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
          tokens.set(challenge.token, keyAuthorization);
        },
        challengeRemoveFn: async (_authz, challenge) => {
          tokens.delete(challenge.token);
        },
      });
      ok++;
    } catch (error) {
      errors.push(error instanceof Error ? error.message : String(error));
    }
  }
};
await Promise.all(Array.from({ length: Number(concurrencyText) }, worker));
const ms = performance.now() - started;
server.close();
console.log(JSON.stringify({ ms, ok, failed: errors.length, errors: errors.slice(0, 3) }));
