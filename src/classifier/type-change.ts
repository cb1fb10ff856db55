/**
 * Which column type changes PostgreSQL applies without rewriting or scanning the table
 * (binary-coercible, with a typmod that only relaxes). Anything not listed rewrites.
 */
import type { TypeInfo } from './ast';

const VARLENA_TEXT = new Set(['varchar', 'text']);

export function isBinaryCompatible(from: TypeInfo, to: TypeInfo): boolean {
  // an array's element type or typmod change goes through an array coercion: PostgreSQL rewrites (measured on 15)
  if (from.array || to.array) return from.array === to.array && from.name === to.name && from.mods.join(',') === to.mods.join(',');
  const relaxes = (a: number[], b: number[]) => b.length === 0 || (a.length > 0 && b[0] >= a[0]);
  if (from.name === to.name) {
    if (from.name === 'numeric') {
      // numeric(p,s) → numeric(p2,s) with p2 ≥ p, or → unconstrained numeric
      if (to.mods.length === 0) return true;
      return from.mods.length > 0 && to.mods[0] >= from.mods[0] && (to.mods[1] ?? 0) === (from.mods[1] ?? 0);
    }
    if (from.name === 'varchar' || from.name === 'varbit') return relaxes(from.mods, to.mods);
    return from.mods.join(',') === to.mods.join(',');
  }
  if (VARLENA_TEXT.has(from.name) && to.name === 'text') return true;
  if (from.name === 'text' && to.name === 'varchar') return to.mods.length === 0;
  if (from.name === 'cidr' && to.name === 'inet') return true;
  return false;
}
