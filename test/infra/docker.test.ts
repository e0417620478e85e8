/**
 * The Dockerfile and .dockerignore (issue 4). No Docker engine runs on this project's machines, so
 * the image is checked by what it is made of: Node 22 LTS stages, production dependencies only
 * (every package the compiled code imports is a production dependency, and none needs an install
 * script, which the image skips), a numeric non-root user, the CLI as the entrypoint behind an init
 * that forwards signals, and a build context that sends only what the Dockerfile copies. The
 * read-only root filesystem is tried in docker.integ.test.ts; signal handling of the CLI process
 * itself in test/integ/signals.integ.test.ts.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { repoPath } from '../helpers/infra-helpers.js';

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** The Dockerfile's stages and instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, keyword = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { keyword: keyword.toUpperCase(), args: rest };
    if (instruction.keyword === 'FROM') {
      const [, image = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? [];
      stages.push({ image: image.replace(/\$\{(\w+)\}/g, (_, arg: string) => args.get(arg) ?? ''), name, instructions: [] });
    } else if (stages.length === 0 && instruction.keyword === 'ARG') {
      const [name = '', value = ''] = rest.split('=');
      args.set(name, value);
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { args, stages };
}

/** The sources of a COPY: from the build context, or from another stage (`--from=`). */
function copySources(instruction: Instruction): { from: string | undefined; sources: string[] } {
  const words = instruction.args.split(/\s+/);
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const paths = words.filter((w) => !w.startsWith('--'));
  return { from, sources: paths.slice(0, -1) };
}

/**
 * Whether .dockerignore keeps `path` out of the build context. Docker's rules: patterns are matched
 * against the path and each of its parent folders, the last matching pattern wins, `!` re-includes.
 */
function ignoredByDockerignore(patterns: readonly string[], path: string): boolean {
  const toRegex = (pattern: string): RegExp =>
    new RegExp(`^${pattern.replace(/\/+$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '.*')}$`);
  const parts = path.split('/');
  const candidates = parts.map((_, k) => parts.slice(0, k + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const regex = toRegex(negated ? raw.slice(1) : raw);
    if (candidates.some((candidate) => regex.test(candidate))) ignored = !negated;
  }
  return ignored;
}

const dockerfile = parseDockerfile(readFileSync(repoPath('Dockerfile'), 'utf8'));
const finalStage = dockerfile.stages.at(-1)!;
const ignorePatterns = readFileSync(repoPath('.dockerignore'), 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
const packageJson = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

function instructions(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

describe('the Dockerfile', () => {
  it('builds every stage on Node 22 LTS', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of dockerfile.stages) expect(stage.image, stage.name ?? 'final stage').toMatch(/^node:22[.-]/);
  });

  it('ships production dependencies only: node_modules comes from a stage that ran `npm ci --omit=dev`', () => {
    const copies = instructions(finalStage, 'COPY').map(copySources);
    const modules = copies.filter((c) => c.sources.some((s) => s.includes('node_modules')));
    expect(modules).toHaveLength(1);
    const source = dockerfile.stages.find((s) => s.name === modules[0]!.from);
    expect(source, `stage ${modules[0]!.from}`).toBeDefined();
    const installs = instructions(source!, 'RUN').filter((r) => /\bnpm (ci|install)\b/.test(r.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs) expect(install.args).toMatch(/--omit=dev/);
    // The compiler's stage contributes dist/ only.
    for (const copy of copies.filter((c) => c.from !== undefined && c.from !== source!.name)) expect(copy.sources).toEqual(['/app/dist']);
    expect(instructions(finalStage, 'RUN').some((r) => /\bnpm\b/.test(r.args)), 'no npm in the final stage').toBe(false);
  });

  it('runs as a numeric non-root user, the CLI as entrypoint behind tini', () => {
    const user = instructions(finalStage, 'USER').at(-1)?.args;
    expect(user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const entrypoint = JSON.parse(instructions(finalStage, 'ENTRYPOINT').at(-1)!.args) as string[];
    expect(entrypoint[0]).toBe('/usr/bin/tini');
    expect(entrypoint.slice(1, 3)).toEqual(['--', 'node']);
    expect(entrypoint.at(-1)).toBe('/app/bin/model-metrics.js');
    expect(instructions(finalStage, 'RUN').some((r) => /apt-get install[^&]*\btini\b/.test(r.args))).toBe(true);
    expect(JSON.parse(instructions(finalStage, 'CMD').at(-1)!.args)).toEqual(['--help']);
    expect(instructions(finalStage, 'ENV').map((e) => e.args).join(' ')).toMatch(/TMPDIR=\/tmp/);
  });

  it('copies from the context only files that exist and that .dockerignore lets through', () => {
    for (const stage of dockerfile.stages) {
      for (const { from, sources } of instructions(stage, 'COPY').map(copySources)) {
        if (from !== undefined) continue;
        for (const source of sources) {
          expect(existsSync(repoPath(source)), `COPY ${source}`).toBe(true);
          expect(ignoredByDockerignore(ignorePatterns, source), `.dockerignore excludes ${source}`).toBe(false);
          if (statSync(repoPath(source)).isDirectory()) {
            for (const file of readdirSync(repoPath(source), { recursive: true }) as string[]) {
              expect(ignoredByDockerignore(ignorePatterns, `${source}/${file}`), `.dockerignore excludes ${source}/${file}`).toBe(false);
            }
          }
        }
      }
    }
  });
});

describe('the build context (.dockerignore)', () => {
  it.each([['node_modules/avsc/package.json'], ['dist/src/cli/main.js'], ['.git/config'], ['test/unit/config.test.ts'], ['infra/minio/docker-compose.yml'], ['model-metrics-demo/predictions/x.avro'], ['.env'], ['bench/run.mjs']])(
    'keeps %s out',
    (path) => expect(ignoredByDockerignore(ignorePatterns, path)).toBe(true),
  );

  it('lets the sources through', () => {
    for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'jobs/main.ts', 'jobs/daily-run.ts', 'bin/model-metrics.js', 'schemas/enriched/v1.avsc']) {
      expect(ignoredByDockerignore(ignorePatterns, path), path).toBe(false);
    }
  });
});

describe('production dependencies', () => {
  it('cover every package the compiled job imports', () => {
    const files = [repoPath('bin', 'model-metrics.js'), ...(readdirSync(repoPath('dist'), { recursive: true }) as string[]).filter((f) => f.endsWith('.js')).map((f) => repoPath('dist', f))];
    expect(files.length).toBeGreaterThan(20);
    const imported = new Set<string>();
    for (const file of files) {
      // Static imports and re-exports (at a line start, as tsc writes them) and dynamic import('…').
      const text = readFileSync(file, 'utf8');
      const statics = [...text.matchAll(/^(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm), ...text.matchAll(/^import\s*['"]([^'"]+)['"]/gm)];
      const dynamics = text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g);
      for (const match of [...statics, ...dynamics]) {
        const specifier = match[1]!;
        if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
        imported.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
      }
    }
    expect(imported.size).toBeGreaterThan(5);
    for (const name of imported) expect(Object.keys(packageJson.dependencies), `${name} is imported by the job`).toContain(name);
  });

  it('need no install script (the image installs them with --ignore-scripts)', () => {
    const lock = JSON.parse(readFileSync(repoPath('package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }> };
    const scripted = Object.entries(lock.packages).filter(([path, entry]) => path !== '' && entry.dev !== true && entry.hasInstallScript === true).map(([path]) => path);
    expect(scripted).toEqual([]);
  });
});
