/** invertMapping: what reverse sync can carry back, and why not when it cannot. */
import { invertMapping, isWidening } from '../../src/sync';
import { TableCatalog, TableInfo } from '../../src/sync/catalog';

function catalog(columns: [string, string, boolean?, boolean?][]): TableCatalog {
  const t: TableInfo = {
    oid: 1, schema: 'public', name: 't', kind: 'r', persistence: 'p', replicaIdentity: 'd', keyColumns: ['id'], hasPrimaryKey: true,
    bytes: 0, estimatedRows: 0, owner: 'postgres',
    columns: columns.map(([name, type, notNull = false, hasDefault = false]) => ({ name, type, notNull, hasDefault, generated: false, identity: '' })),
  };
  return new Map([['public.t', t]]);
}

const base = { renamedColumns: {}, droppedColumns: [], addedColumns: [], typeChanges: [] };

test('renames, added columns, widening type changes and table renames invert cleanly', () => {
  const inv = invertMapping({
    tables: [{ table: 'public.t', renamedTo: 'public.u', renamedColumns: { a: 'b' }, droppedColumns: ['old'], addedColumns: [{ column: 'n', default: '0', notNull: true }], typeChanges: [{ column: 'b', newType: 'int8' }, { column: 'v', newType: 'varchar(100)', using: 'v::varchar(100)' }] }],
    newTables: ['public.fresh'], droppedTables: ['public.gone'],
  }, catalog([['id', 'integer', true], ['a', 'integer'], ['old', 'text'], ['v', 'character varying(50)']]));
  expect(inv.problems).toEqual([]);
  expect(inv.invertible).toBe(true);
  expect(inv.mapping).toEqual({
    tables: [{
      table: 'public.u', renamedTo: 'public.t', renamedColumns: { b: 'a' }, droppedColumns: ['n'],
      addedColumns: [{ column: 'old', notNull: false, generated: undefined }],
      typeChanges: [{ column: 'a', newType: 'integer' }, { column: 'v', newType: 'character varying(50)' }],
    }],
    newTables: ['public.gone'], droppedTables: ['public.fresh'],
  });
  expect(inv.warnings.join('\n')).toMatch(/public\.t\.old: dropped column gets its default/);
  expect(inv.warnings.join('\n')).toMatch(/public\.fresh: new table; rows written to it after the flip are not synced back/);
});

test('a dropped NOT NULL column without default and lossy type changes have no inverse, with the reason', () => {
  const inv = invertMapping({
    tables: [{ ...base, table: 'public.t', droppedColumns: ['code'], typeChanges: [{ column: 'name', newType: 'varchar(10)', using: 'left(name, 10)' }, { column: 'amount', newType: 'integer' }] }],
    newTables: [], droppedTables: [],
  }, catalog([['id', 'integer', true], ['code', 'text', true, false], ['name', 'text'], ['amount', 'numeric(12,2)']]));
  expect(inv.invertible).toBe(false);
  expect(inv.problems).toEqual([
    'public.t.code: dropped column is NOT NULL without a default on the old side, so rows inserted after the flip cannot be written back',
    'public.t.name: type change text → varchar(10) USING left(name, 10) can lose data; writing rows back after the flip would overwrite the old side\'s values',
    'public.t.amount: type change numeric(12,2) → integer can lose data; writing rows back after the flip would overwrite the old side\'s values',
  ]);
});

test('widening rules', () => {
  expect(isWidening('integer', 'bigint')).toBe(true);
  expect(isWidening('bigint', 'integer')).toBe(false);
  expect(isWidening('character varying(20)', 'text')).toBe(true);
  expect(isWidening('text', 'varchar(20)')).toBe(false);
  expect(isWidening('numeric(10,2)', 'numeric(12,2)')).toBe(true);
  expect(isWidening('numeric(10,2)', 'numeric(10,3)')).toBe(false);
  expect(isWidening('smallint', 'numeric(5,0)')).toBe(true);
  expect(isWidening('timestamp', 'timestamptz')).toBe(false);
});

test('a widening inverts with a warning (values that do not fit back make a rollback impossible); an exact-or-error narrowing inverts cleanly', () => {
  const inv = invertMapping({
    tables: [{ ...base, table: 'public.t', typeChanges: [
      { column: 'n', newType: 'bigint' }, { column: 'name', newType: 'varchar(200)' }, { column: 'small', newType: 'integer' }, { column: 'price', newType: 'numeric(12,1)' },
    ] }],
    newTables: [], droppedTables: [],
  }, catalog([['id', 'integer', true], ['n', 'integer'], ['name', 'text'], ['small', 'bigint'], ['price', 'numeric(12,2)']]));
  // numeric(12,2) → numeric(12,1) rounds: the rounded value written back would replace the exact one
  expect(inv.problems).toEqual(['public.t.price: type change numeric(12,2) → numeric(12,1) can lose data; writing rows back after the flip would overwrite the old side\'s values']);
  // int → bigint: the way back can fail; text → varchar(200) and bigint → integer refuse what they cannot keep, so they come back unchanged
  expect(inv.warnings).toEqual(['public.t.n: a value written after the flip that does not fit integer cannot go back: a rollback then stops as impossible and traffic stays on the new side']);
});
