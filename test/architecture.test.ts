/**
 * The module map of docs/architecture.md, checked against the source: every
 * import between top-level modules of src/ is one the map allows, every module
 * has a row, no file imports itself round a cycle, and no two modules export
 * the same name.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** `proxy/` for src/proxy/…, `config.ts` for src/config.ts */
function moduleOf(file: string): string {
  const [first, ...rest] = path.relative(SRC, file).split(path.sep);
  return rest.length ? `${first}/` : first;
}

/** Relative imports (static, type-only, dynamic, re-exports) of a file, resolved to files under src. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'(\.{1,2}\/[^']+)'/gm)) {
    const target = path.resolve(path.dirname(file), m[1]);
    if (!target.startsWith(SRC + path.sep)) continue;
    const candidates = [`${target}.ts`, path.join(target, 'index.ts'), target];
    const hit = candidates.find((c) => FILES.has(c));
    if (!hit) throw new Error(`${path.relative(ROOT, file)}: cannot resolve ${m[1]}`);
    out.push(hit);
  }
  return out;
}

const FILES = new Set(sourceFiles(SRC));

/** The table under "## Module map": module → the modules it may import ('*': any). */
function moduleMap(): Map<string, Set<string> | '*'> {
  const doc = readFileSync(path.join(ROOT, 'docs/architecture.md'), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Module map'));
  if (!section) throw new Error('docs/architecture.md has no "## Module map" section');
  const map = new Map<string, Set<string> | '*'>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells.length < 3 || !cells[0].startsWith('`')) continue;
    const name = cells[0].replace(/`/g, '');
    const may = cells[cells.length - 1];
    map.set(name, may === 'any' ? '*' : new Set([...may.matchAll(/`([^`]+)`/g)].map((m) => m[1])));
  }
  return map;
}

test('every import between modules of src/ is one the module map of docs/architecture.md allows', () => {
  const map = moduleMap();
  const modules = new Set([...FILES].map(moduleOf));
  expect([...modules].filter((m) => !map.has(m)).sort()).toEqual([]);
  expect([...map.keys()].filter((m) => !modules.has(m)).sort()).toEqual([]);
  const forbidden: string[] = [];
  for (const file of FILES) {
    const from = moduleOf(file);
    const allowed = map.get(from)!;
    for (const target of importsOf(file)) {
      const to = moduleOf(target);
      if (to !== from && allowed !== '*' && !allowed.has(to)) forbidden.push(`${path.relative(ROOT, file)} imports ${path.relative(ROOT, target)} (${from} → ${to})`);
    }
  }
  expect(forbidden).toEqual([]);
});

test('no import cycles between the files of src/, type-only imports included', () => {
  const graph = new Map([...FILES].map((f) => [f, importsOf(f)]));
  // Tarjan's strongly connected components: any component of more than one file is a cycle
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of graph.get(v)!) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); scc.push(path.relative(SRC, w)); } while (w !== v);
      if (scc.length > 1 || graph.get(v)!.includes(v)) cycles.push(scc.sort());
    }
  };
  for (const f of graph.keys()) if (!idx.has(f)) visit(f);
  expect(cycles).toEqual([]);
});

test('no two files of src/ export the same name: one name, one concept', () => {
  const owners = new Map<string, string[]>();
  for (const file of FILES) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^export\s+(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|const\s+enum|const|let|class|interface|type|enum)\s+([A-Za-z_$][\w$]*)/gm)) {
      owners.set(m[1], [...(owners.get(m[1]) ?? []), path.relative(SRC, file)]);
    }
  }
  expect([...owners].filter(([, files]) => files.length > 1).map(([name, files]) => `${name}: ${files.join(', ')}`)).toEqual([]);
});
