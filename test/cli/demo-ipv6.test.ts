import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { startDemo } from '../../src/cli/demo.js';
import { silentLogger } from '../helpers/logging.js';

const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address === '::1'));

describe('certkeeper demo', () => {
  it('serves a certificate that verifies on every address it listens on, ::1 included', { skip: hasIpv6Loopback ? false : 'no IPv6 loopback' }, async () => {
    const storageRoot = await mkdtemp(join(tmpdir(), 'ck-demo6-'));
    const demo = await startDemo({ port: 0, storageRoot, logger: silentLogger() });
    try {
      const ca = await readFile(demo.rootCertificatePath, 'utf8');
      for (const host of ['127.0.0.1', '::1']) {
        // No SNI for an IP address: the client checks the certificate's IP SAN against `host`.
        const authorized = await new Promise<boolean>((resolve, reject) => {
          const socket = tls.connect({ host, port: demo.port, ca }, () => {
            resolve(socket.authorized);
            socket.end();
          });
          socket.on('error', reject);
        });
        assert.equal(authorized, true, `certificate verifies for ${host}`);
      }
    } finally {
      await demo.close();
      await rm(storageRoot, { recursive: true, force: true });
    }
  });
});
