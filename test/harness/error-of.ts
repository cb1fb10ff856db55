/** The error a promise rejects with, as a client sees it (SQLSTATE and message); fails when it resolves. */
export async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try { await p; } catch (e) { return { code: (e as { code?: string }).code, message: (e as Error).message }; }
  throw new Error('expected an error');
}
