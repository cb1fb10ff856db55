/**
 * A client that says Terminate is answered by the connection closing, nothing
 * else — also when the server's close reaches the proxy before the client's own.
 */
import { startPair, TestCluster } from '../harness/clusters';
import { PROXY_PASSWORD, PROXY_USER, startProxyFor, TestProxy } from '../harness/proxy';
import { RawClient, rawMessage } from './raw-client';

let pair: { blue: TestCluster; green: TestCluster; stop(): Promise<void> };
let px: TestProxy;

beforeAll(async () => {
  pair = await startPair();
  px = await startProxyFor(pair);
});
afterAll(async () => {
  await px?.stop();
  await pair?.stop();
});

it('closes without an error after the client sends Terminate and keeps its socket open', async () => {
  for (let i = 0; i < 20; i++) {
    const c = await RawClient.login(px.proxy.port, PROXY_USER, PROXY_PASSWORD);
    // Terminate, but the client does not close: the backend's close always arrives first
    c.send(rawMessage('X', Buffer.alloc(0)));
    await c.waitClosed();
    const left: string[] = [];
    for (;;) {
      try { left.push((await c.next(1)).type); } catch { break; }
    }
    expect(left).toEqual([]);
  }
});
