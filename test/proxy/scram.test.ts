import { formatVerifier, parseVerifier, ScramClient, ScramServerExchange, secretFromPassword } from '../../src/proxy/scram';

// RFC 7677 section 3 example
const SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const CLIENT_NONCE = 'rOprNGfwEbeRWgbNEkqO';
const SERVER_NONCE = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const SERVER_FIRST = `r=${CLIENT_NONCE}${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`;
const CLIENT_FINAL = `c=biws,r=${CLIENT_NONCE}${SERVER_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=`;
const SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

describe('SCRAM-SHA-256', () => {
  test('server side reproduces the RFC 7677 exchange', () => {
    const ex = new ScramServerExchange(secretFromPassword('pencil', SALT, 4096), Buffer.alloc(16));
    expect(ex.first(`n,,n=user,r=${CLIENT_NONCE}`, SERVER_NONCE)).toBe(SERVER_FIRST);
    expect(ex.final(CLIENT_FINAL)).toBe(SERVER_FINAL);
  });

  test('server side rejects a wrong proof and an unknown user', () => {
    const wrong = new ScramServerExchange(secretFromPassword('pencil2', SALT, 4096), Buffer.alloc(16));
    wrong.first(`n,,n=user,r=${CLIENT_NONCE}`, SERVER_NONCE);
    expect(wrong.final(CLIENT_FINAL)).toBeUndefined();
    const unknown = new ScramServerExchange(undefined, SALT);
    unknown.first(`n,,n=user,r=${CLIENT_NONCE}`, SERVER_NONCE);
    expect(unknown.final(CLIENT_FINAL)).toBeUndefined();
  });

  test('server side refuses channel binding and malformed messages', () => {
    const ex = () => new ScramServerExchange(secretFromPassword('x'), Buffer.alloc(16));
    expect(() => ex().first('p=tls-server-end-point,,n=,r=abc')).toThrow('channel binding');
    expect(() => ex().first('garbage')).toThrow('malformed');
    const e = ex();
    e.first('n,,n=,r=abc');
    expect(() => e.final('c=biws,r=wrong,p=AAAA')).toThrow('nonce');
  });

  test('client side reproduces the RFC 7677 exchange', () => {
    const c = new ScramClient('pencil', CLIENT_NONCE);
    // PostgreSQL ignores the SCRAM user name (it uses the startup user)
    expect(c.first()).toBe(`n,,n=*,r=${CLIENT_NONCE}`);
    const ex = new ScramServerExchange(secretFromPassword('pencil', SALT, 4096), Buffer.alloc(16));
    const serverFirst = ex.first(c.first(), SERVER_NONCE);
    const final = c.final(serverFirst);
    const serverFinal = ex.final(final);
    expect(serverFinal).toBeDefined();
    expect(() => c.verify(serverFinal!)).not.toThrow();
    expect(() => c.verify('v=AAAA')).toThrow('signature');
  });

  test('stored verifiers round-trip', () => {
    const s = secretFromPassword('pencil', SALT, 4096);
    expect(parseVerifier(formatVerifier(s))).toEqual(s);
    expect(() => parseVerifier('md5abc')).toThrow();
  });
});
