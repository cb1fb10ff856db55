/** The objects torture programs use, on both sides and in the direct run's database `ref`. */
import type { TestCluster } from '../harness/clusters';
import type { Target } from './clients';

const SCHEMA = `CREATE TABLE items (id int PRIMARY KEY, v text); CREATE SCHEMA other;
  GRANT ALL ON items TO PUBLIC; GRANT USAGE ON SCHEMA other TO PUBLIC`;

export async function prepareTortureSchema(blue: TestCluster, green: TestCluster): Promise<void> {
  for (const c of [blue, green]) {
    await c.query("CREATE ROLE limited; CREATE ROLE bob; GRANT limited TO bob", [], 'postgres');
    await c.query(SCHEMA);
  }
  await blue.query('CREATE DATABASE ref', [], 'postgres');
  await blue.query(SCHEMA, [], 'ref');
}

export function targetOf(c: TestCluster, database: string): Target {
  const u = new URL(c.url(database));
  return { host: '127.0.0.1', port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database };
}
