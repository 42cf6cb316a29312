/**
 * A hand-built TLS 1.2 ClientHello, for server names Node's client will not
 * send as given (it cuts a name at NUL, OpenSSL refuses names over 255
 * bytes, and IP literals are not sent), or with no SNI at all. Sends it,
 * then reports how the server answered.
 */
import net from 'node:net';

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body]);
}

/** A ClientHello naming `serverName`, or with no server_name extension when it is undefined. */
export function clientHello(serverName: Buffer | undefined): Buffer {
  const sni = serverName === undefined ? undefined : Buffer.concat([u16(serverName.length + 3), Buffer.from([0]), u16(serverName.length), serverName]);
  const groups = Buffer.from([0x00, 0x17, 0x00, 0x1d]); // secp256r1, x25519
  const sigalgs = Buffer.from([0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
  const extensions = Buffer.concat([
    ...(sni === undefined ? [] : [extension(0x0000, sni)]),
    extension(0x000a, Buffer.concat([u16(groups.length), groups])),
    extension(0x000b, Buffer.from([0x01, 0x00])),
    extension(0x000d, Buffer.concat([u16(sigalgs.length), sigalgs])),
  ]);
  const suites = Buffer.from([0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE-ECDSA/RSA-AES128-GCM-SHA256
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.from([0x00]),
    u16(suites.length),
    suites,
    Buffer.from([0x01, 0x00]),
    u16(extensions.length),
    extensions,
  ]);
  const handshake = Buffer.concat([Buffer.from([0x01]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(handshake.length), handshake]);
}

/** Sends a ClientHello naming `serverName`; resolves with the first record type the server sent back (0x15 alert, 0x16 handshake) or 'closed'. */
export function sendClientHello(port: number, serverName: Buffer | undefined): Promise<'alert' | 'handshake' | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(clientHello(serverName)));
    let done = false;
    const finish = (result: 'alert' | 'handshake' | 'closed'): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(result);
    };
    socket.on('data', (data: Buffer) => finish(data[0] === 0x15 ? 'alert' : data[0] === 0x16 ? 'handshake' : 'closed'));
    socket.on('error', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.setTimeout(10_000, () => finish('closed'));
  });
}

/**
 * Sends a ClientHello naming `serverName` and closes the connection `afterMs` later, whatever the server did:
 * a client that gives up while the server is still deciding. Resolves when the socket has closed.
 */
export function clientHelloThenClose(port: number, serverName: Buffer, afterMs: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.write(clientHello(serverName));
      setTimeout(() => socket.destroy(), afterMs);
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => resolve());
  });
}
