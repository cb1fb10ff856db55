/**
 * Whether a constraint or index name is a key (primary key, unique, exclusion): what the running
 * application's ON CONFLICT and logical replication rely on. Known from the file or the live
 * catalog; otherwise read from the name, by PostgreSQL's own naming (`t_pkey`, `t_col_key`,
 * `t_col_excl`, `t_col_fkey`, `t_col_check`, `t_col_not_null`) and the usual conventions of
 * frameworks (`pk_`, `uq_`, `uniq`, `fk_`, `ck_`, Django's `_uniq` and `_fk_`).
 */
export type KeyKind = 'key' | 'other';

/** PostgreSQL's own names end in these (with a number when it had to make one unique): they decide first */
const PG_KEY = /_(pkey|key|excl)\d*$/i;
const PG_OTHER = /_(fkey|check|not_null)\d*$/i;
const KEY = /(_uniq|_unique|_uk|_pk)$|^(pk|uq|uk|ux|uix|unique|uniq)_|_(unique|uniq)_/i;
// `idx_` / `index_` say nothing: Rails names unique indexes `index_…` too
const OTHER = /(_fk|_chk|_ck)$|^(fk|ck|chk)_|_fk_/i;

/** pg_constraint.contype (p, u, x are keys) → KeyKind */
export const kindOfContype = (contype: string): KeyKind => (['p', 'u', 'x'].includes(contype) ? 'key' : 'other');

/** The kind a name suggests, or undefined when it says nothing. */
export function kindFromName(name: string): KeyKind | undefined {
  if (PG_KEY.test(name)) return 'key';
  if (PG_OTHER.test(name)) return 'other';
  if (OTHER.test(name)) return 'other';
  if (KEY.test(name)) return 'key';
  return undefined;
}
