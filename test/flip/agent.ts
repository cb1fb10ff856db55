/**
 * A client program kept running across flips, driven line by line: the test
 * writes a command on its stdin and reads one answer line from its stdout.
 */
import { ChildProcess, spawn } from 'node:child_process';

export class LineAgent {
  private readonly lines: string[] = [];
  private waiting: (() => void) | null = null;
  private stderr = '';
  private exited: number | null = null;

  private constructor(private readonly child: ChildProcess, readonly name: string) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) { this.lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
      this.poke();
    });
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    child.on('exit', (code) => { this.exited = code ?? -1; this.poke(); });
  }

  private poke(): void { const w = this.waiting; this.waiting = null; w?.(); }

  static start(name: string, file: string, args: string[], env?: NodeJS.ProcessEnv): LineAgent {
    return new LineAgent(spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }), name);
  }

  /** the next line of output */
  async line(timeoutMs = 20_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    while (!this.lines.length) {
      if (this.exited !== null) throw new Error(`${this.name} exited ${this.exited}: ${this.stderr}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no answer within ${timeoutMs} ms; stderr: ${this.stderr}`);
      await new Promise<void>((r) => { this.waiting = r; setTimeout(r, Math.min(left, 200)); });
    }
    return this.lines.shift()!;
  }

  async ask(cmd: string): Promise<string> {
    this.child.stdin!.write(`${cmd}\n`);
    return this.line();
  }

  async stop(): Promise<void> {
    if (this.exited !== null) return;
    this.child.stdin!.end('quit\n');
    await Promise.race([new Promise((r) => this.child.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
    if (this.exited === null) this.child.kill('SIGKILL');
  }
}
