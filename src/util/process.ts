/** Whether a process with this pid exists (one of another user's counts: EPERM). */
export function processAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}
