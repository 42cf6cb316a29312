/**
 * The house rules: which way imports run (ARCHITECTURE.md explains why).
 * Checked in `npm test` by test/architecture/house.test.ts and by `npm run check:imports`.
 * Type-only imports count: a cycle through types is still a cycle for a reader.
 */
const FOUNDATION = '^src/(errors|child-process|listen|error-base|error-codes|kinds|clock|lazy|abort|logger|names|validate|defaults|redact|lifecycle|events)\\.ts$';
const ABOVE_MANAGER = '^src/(index\\.ts|serve-https\\.ts|manager/|cli/|daemon/|testing/)';

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      comment: 'No import cycle, type-only imports included.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'foundation-imports-only-foundation',
      comment: 'errors, clock, defaults, validate and the other base modules sit below every part.',
      severity: 'error',
      from: { path: FOUNDATION },
      to: { path: '^src/', pathNot: FOUNDATION },
    },
    {
      name: 'storage-knows-no-user',
      comment: 'storage/ imports no ACME, TLS, issuer, challenge, HTTP, renewal or manager code.',
      severity: 'error',
      from: { path: '^src/storage/' },
      to: { path: '^src/(acme|tls|issuers|challenges|solvers|http|renewal|manager|notify|dns|cli|daemon|doctor|config|observability)/|^src/(manager|serve-https|config)\\.ts$' },
    },
    {
      name: 'dns-imports-no-acme',
      comment: 'DNS providers know DNS, not ACME.',
      severity: 'error',
      from: { path: '^src/dns/' },
      to: { path: '^src/(acme|issuers|challenges|solvers|tls|http|renewal|manager|cli|daemon|config)/|^src/(manager|serve-https|config)\\.ts$' },
    },
    {
      name: 'tls-does-no-acme',
      comment: 'The TLS cache serves what it is handed: no ACME, issuer, challenge or manager code.',
      severity: 'error',
      from: { path: '^src/tls/' },
      to: { path: '^src/(acme|issuers|challenges|solvers|http|renewal|revocation|manager|cli|daemon|config)/|^src/(manager|serve-https|config)\\.ts$' },
    },
    {
      name: 'revocation-knows-no-acme',
      comment: 'Revocation checks read CRLs and OCSP over plain HTTP: no ACME, issuer, challenge, HTTP middleware or TLS server code.',
      severity: 'error',
      from: { path: '^src/revocation/' },
      to: { path: '^src/(acme|issuers|challenges|solvers|http|tls|cli|daemon|doctor)/|^src/(manager|serve-https)\\.ts$' },
    },
    {
      name: 'nothing-below-imports-the-manager',
      comment: 'Only the entry points, the CLI, the daemon and testing sit above the manager.',
      severity: 'error',
      from: { path: '^src/', pathNot: ABOVE_MANAGER },
      to: { path: '^src/manager/|^src/manager\\.ts$|^src/serve-https\\.ts$' },
    },
    {
      name: 'middleware-gets-a-handler',
      comment: 'HTTP middleware gets a challenge handler, not the manager or an issuer.',
      severity: 'error',
      from: { path: '^src/http/' },
      to: { path: '^src/(manager|issuers|acme|renewal|cli|daemon)/' },
    },
    {
      name: 'acme-client-only-in-acme',
      comment: 'acme-client is wrapped by acme/ alone, so its private parts are pinned in one place.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/acme/' },
      to: { path: 'node_modules/acme-client/' },
    },
    {
      name: 'core-imports-no-adapter',
      comment: 'The core package imports no storage adapter and no framework at run time.',
      severity: 'error',
      from: { path: '^src/' },
      to: {
        path: '^storage-adapters/|node_modules/(ioredis|pg|etcd3|express|koa|fastify)/',
        dependencyTypesNot: ['type-only'],
      },
    },
    {
      name: 'adapters-import-the-package',
      comment: 'Storage adapters import only the published package `certkeeper`, never a path into its sources.',
      severity: 'error',
      from: { path: '^storage-adapters/[^/]+/src/' },
      to: { path: '^src/', dependencyTypes: ['local'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)|/dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
