/**
 * Prerequisite downloads (CockroachDB, ClickHouse, console assets, SP/RoT
 * firmware…) declared in a small TOML list and pinned the way Omicron pins
 * them: a version file (`COMMIT="…"` or a bare version) picks the URL, a
 * checksum file (`CIDL_SHA256_LINUX="…"`) or a permslip `<sha256> <name>`
 * list pins the bytes.
 *
 * fetch: one job per prereq on the job graph, each downloaded into the
 * content-addressed cache (verified while streaming), then copied to its
 * dest atomically. check: says ok / missing / stale without the network.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { openAtomic, writeFileAtomic } from '../core/atomic-file.js';
import { fromSystemError, isSlipwayError, SlipwayError, type ErrorCode } from '../core/errors.js';
import { type Reporter, silentReporter, warn } from '../core/events.js';
import {
  formatKeyPath,
  nearestLine,
  parseTomlLocated,
  type KeySegment,
  type Located,
} from '../formats/toml-located.js';
import {
  parseBareVersion,
  parseChecksumList,
  parseShellVars,
  requireVar,
  type ShellVar,
} from '../formats/version-files.js';
import { fetchCached, type CacheFetchOptions } from './fetch.js';
import { runGraph, type GraphReport, type JobContext } from './graph.js';

export const DEFAULT_PREREQS_FILE = 'prereqs.toml';

export interface PrereqWarning {
  where: string;
  key: string;
  message: string;
}

export interface Prereq {
  name: string;
  /** `prereqs.toml:line` of its `[[prereq]]` header. */
  where: string;
  url: string;
  /** The pinned sha256, lowercase hex. */
  sha256: string;
  /** Where the pin comes from, e.g. `tools/clickhouse_checksums:2 CIDL_SHA256_LINUX`. */
  pinnedBy: string;
  /** Absolute path. */
  dest: string;
}

export interface PrereqList {
  file: string;
  dir: string;
  prereqs: Prereq[];
  warnings: PrereqWarning[];
}

type Table = Record<string, unknown>;
type Path = KeySegment[];

const TOP_KEYS = ['prereq', 'vars'];
const PREREQ_KEYS = [
  'name',
  'url',
  'dest',
  'version_file',
  'checksum_file',
  'sha256_key',
  'checksum_list',
  'checksum_name',
  'sha256',
];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
/** A `KEY=` line as parseShellVars reads it: then the file is shell vars, else a bare version. */
const SHELL_LINE = /^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*=/m;
/** Version and checksum files are a few lines; a huge one is a wrong path, not a pin. */
const MAX_PIN_FILE = 1 << 20;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Validation state for one prereqs.toml: where each key is, and the warnings so far. */
class Checker {
  readonly warnings: PrereqWarning[] = [];

  constructor(
    readonly file: string,
    private readonly located: Located,
  ) {}

  /** The line of `p`, or of its nearest ancestor that has one (a missing key → its table). */
  where(p: Path): string {
    return `${this.file}:${nearestLine(this.located, p)}`;
  }

  fail(p: Path, message: string, code: ErrorCode = 'PREREQ_INVALID', cause?: unknown): never {
    throw new SlipwayError(code, `${formatKeyPath(p)}: ${message}`, {
      where: this.where(p),
      ...(cause !== undefined ? { cause } : {}),
    });
  }

  unknownKeys(t: Table, p: Path, known: readonly string[]): void {
    for (const k of Object.keys(t)) {
      if (known.includes(k)) continue;
      const key = formatKeyPath([...p, k]);
      this.warnings.push({ where: this.where([...p, k]), key, message: `${key}: unknown key (ignored)` });
    }
  }

  string(t: Table, key: string, p: Path, required: true): string;
  string(t: Table, key: string, p: Path, required?: false): string | undefined;
  string(t: Table, key: string, p: Path, required = false): string | undefined {
    const v = t[key];
    if (v === undefined) {
      if (required) this.fail([...p, key], 'required key is missing');
      return undefined;
    }
    if (typeof v !== 'string' || v === '') this.fail([...p, key], 'must be a non-empty string');
    return v;
  }
}

interface PinFile {
  display: string;
  text: string;
}

/**
 * Reads the prereq list and every version and checksum file it names, and
 * resolves URLs and pins. `vars` are the --var values. Throws on the first
 * problem, naming file:line and key.
 */
export function loadPrereqs(file: string, vars: Readonly<Record<string, string>> = {}): PrereqList {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw fromSystemError(err, 'cannot read prerequisite list', file);
  }
  const located = parseTomlLocated(text, file);
  const c: Checker = new Checker(file, located);
  const root = located.value as Table;
  c.unknownKeys(root, [], TOP_KEYS);
  const dir = path.dirname(path.resolve(file));
  const displayDir = path.dirname(file);

  const globals = new Map<string, string>();
  if (root.vars !== undefined) {
    if (!isTable(root.vars)) c.fail(['vars'], 'must be a table of strings ([vars])');
    for (const [k, v] of Object.entries(root.vars)) {
      if (!VAR_NAME.test(k)) c.fail(['vars', k], 'a variable name is letters, digits and _');
      if (typeof v !== 'string') c.fail(['vars', k], 'must be a string');
      globals.set(k, v);
    }
  }
  for (const [k, v] of Object.entries(vars)) {
    if (!VAR_NAME.test(k)) throw new SlipwayError('USAGE', `--var ${k}=…: a name is letters, digits and _`);
    globals.set(k, v);
  }

  const list = root.prereq ?? [];
  if (!Array.isArray(list) || !list.every(isTable))
    c.fail(['prereq'], 'must be an array of tables: write each as [[prereq]]');

  const names = new Map<string, string>();
  const dests = new Map<string, string>();
  const prereqs = list.map((t, i): Prereq => {
    const p: Path = ['prereq', i];
    c.unknownKeys(t, p, PREREQ_KEYS);
    const name = c.string(t, 'name', p, true);
    if (!NAME.test(name))
      c.fail([...p, 'name'], `${JSON.stringify(name)}: use letters, digits and . _ + - (it names a job)`);
    const seen = names.get(name);
    if (seen !== undefined) c.fail([...p, 'name'], `prereq '${name}' is already declared at ${seen}`);
    names.set(name, c.where(p));
    const ctx = `prereq '${name}'`;

    /** A version or checksum file, relative to the list's directory; missing is an error naming it. */
    const readPin = (key: string): PinFile | undefined => {
      const rel = c.string(t, key, p);
      if (rel === undefined) return undefined;
      const abs = path.resolve(dir, rel);
      const display = path.join(displayDir, rel);
      try {
        const st = fs.statSync(abs);
        if (!st.isFile()) c.fail([...p, key], `${ctx}: ${display} is not a file`);
        if (st.size > MAX_PIN_FILE)
          c.fail([...p, key], `${ctx}: ${display} is ${st.size} bytes; a pin file is a few lines`);
        return { display, text: fs.readFileSync(abs, 'utf8') };
      } catch (err) {
        if (isSlipwayError(err)) throw err;
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        c.fail(
          [...p, key],
          `${ctx}: ${display}: ${missing ? 'no such file' : (err as Error).message}`,
          missing ? 'NOT_FOUND' : 'IO',
          err,
        );
      }
    };

    // Template keys come from this prereq's own pin files first, so a URL
    // always follows the pinned version; then --var, then [vars].
    const fileVars: { display: string; vars: Map<string, ShellVar> }[] = [];
    const versionFile = readPin('version_file');
    if (versionFile !== undefined) {
      if (SHELL_LINE.test(versionFile.text)) {
        fileVars.push({
          display: versionFile.display,
          vars: parseShellVars(versionFile.text, versionFile.display),
        });
      } else {
        const version = parseBareVersion(versionFile.text, versionFile.display);
        fileVars.push({
          display: versionFile.display,
          vars: new Map([['VERSION', { value: version, line: 1 }]]),
        });
      }
    }

    // Exactly one pin: an inline sha256, a key of a checksum file, or a name in a checksum list.
    const sources = ['sha256', 'checksum_file', 'checksum_list'].filter((k) => t[k] !== undefined);
    if (sources.length !== 1) {
      c.fail(
        sources.length === 0 ? p : [...p, sources[1] ?? ''],
        sources.length === 0
          ? `${ctx}: no pin; give checksum_file + sha256_key, checksum_list (+ checksum_name) or sha256`
          : `${ctx}: pinned twice (${sources.join(', ')}); keep one`,
      );
    }
    for (const [needs, key] of [
      ['checksum_file', 'sha256_key'],
      ['checksum_list', 'checksum_name'],
    ] as const) {
      if (t[key] !== undefined && t[needs] === undefined)
        c.fail([...p, key], `${ctx}: ${key} is only meaningful with ${needs}`);
    }

    let sha256: string;
    let pinnedBy: string;
    const checksumFile = readPin('checksum_file');
    const checksumList = readPin('checksum_list');
    if (checksumFile !== undefined) {
      const key = c.string(t, 'sha256_key', p, true);
      const cvars = parseShellVars(checksumFile.text, checksumFile.display);
      fileVars.push({ display: checksumFile.display, vars: cvars });
      try {
        sha256 = requireVar(cvars, key, checksumFile.display);
      } catch (err) {
        c.fail([...p, 'sha256_key'], `${ctx}: ${(err as Error).message}`, 'VERSION_FILE_INVALID', err);
      }
      const line = cvars.get(key)?.line ?? 1;
      pinnedBy = `${checksumFile.display}:${line} ${key}`;
      if (!SHA256_HEX.test(sha256)) {
        throw new SlipwayError(
          'VERSION_FILE_INVALID',
          `${key}: not a SHA-256 (64 hex digits): ${JSON.stringify(sha256)} (the pin of ${ctx})`,
          { where: `${checksumFile.display}:${line}` },
        );
      }
    } else if (checksumList !== undefined) {
      const entry = c.string(t, 'checksum_name', p) ?? name;
      const sums = parseChecksumList(checksumList.text, checksumList.display);
      const found = sums.get(entry);
      if (found === undefined) {
        const has = [...sums.keys()];
        c.fail(
          [...p, t.checksum_name !== undefined ? 'checksum_name' : 'checksum_list'],
          `${ctx}: ${checksumList.display} has no entry '${entry}' (has: ${has.length > 0 ? has.join(', ') : 'nothing'})`,
          'VERSION_FILE_INVALID',
        );
      }
      sha256 = found;
      pinnedBy = `${checksumList.display} ${entry}`;
    } else {
      sha256 = c.string(t, 'sha256', p, true);
      if (!SHA256_HEX.test(sha256)) c.fail([...p, 'sha256'], `${ctx}: not a SHA-256 (64 hex digits)`);
      pinnedBy = c.where([...p, 'sha256']);
    }

    const lookup = (key: string): string | undefined => {
      for (const f of fileVars) {
        const v = f.vars.get(key);
        if (v !== undefined) return v.value;
      }
      return globals.get(key);
    };
    const expand = (key: 'url' | 'dest'): string => {
      const template = c.string(t, key, p, true);
      const at: Path = [...p, key];
      if (template.replace(PLACEHOLDER, '').includes('{{'))
        c.fail(at, `${ctx}: an unclosed {{ in ${JSON.stringify(template)}`);
      return template.replace(PLACEHOLDER, (_m, k: string) => {
        if (!VAR_NAME.test(k)) c.fail(at, `${ctx}: {{${k}}} is not a variable name`);
        const v = lookup(k);
        if (v === undefined) {
          const from = [...fileVars.map((f) => f.display), '[vars]', '--var'].join(', ');
          c.fail(at, `${ctx}: {{${k}}} is not set by any of ${from}`);
        }
        return v;
      });
    };

    const url = expand('url');
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:'))
      c.fail([...p, 'url'], `${ctx}: ${JSON.stringify(url)} is not an http(s) URL`);

    const destRel = expand('dest');
    const dest = path.resolve(dir, destRel);
    const rel = path.relative(dir, dest);
    // Downloads land inside the project: a dest that escapes it is a typo or worse.
    if (path.isAbsolute(destRel) || rel === '' || rel.startsWith('..') || path.isAbsolute(rel))
      c.fail(
        [...p, 'dest'],
        `${ctx}: ${JSON.stringify(destRel)} must be a relative path inside ${displayDir}`,
      );
    const other = dests.get(dest);
    if (other !== undefined)
      c.fail([...p, 'dest'], `${ctx}: ${destRel} is also the dest of prereq '${other}'`);
    dests.set(dest, name);

    return { name, where: c.where(p), url, sha256: sha256.toLowerCase(), pinnedBy, dest };
  });

  return { file, dir, prereqs, warnings: c.warnings };
}

interface Seen {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

/**
 * sha256 of each dest, remembered by (size, mtime, inode), so a re-run stats
 * its files and reads none. Unlike DigestCache, a digest we computed while
 * writing the file can be recorded directly instead of re-reading it.
 */
class DestDigests {
  readonly #file: string;
  #entries: Record<string, Seen> = {};
  #dirty = false;

  constructor(file: string) {
    this.#file = file;
    try {
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
      if (isTable(parsed)) this.#entries = parsed as Record<string, Seen>;
    } catch {
      // missing or unreadable: start empty (it is only a cache)
    }
  }

  /** undefined when `file` does not exist; sha256 undefined when it is not a regular file. */
  async inspect(file: string): Promise<{ sha256: string | undefined } | undefined> {
    let st: fs.Stats;
    try {
      st = await fsp.stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fromSystemError(err, 'cannot stat', file);
    }
    if (!st.isFile()) return { sha256: undefined };
    const e = this.#entries[file];
    if (e?.size === st.size && e.mtimeMs === st.mtimeMs && e.ino === st.ino) return { sha256: e.sha256 };
    const hash = createHash('sha256');
    try {
      for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }))
        hash.update(chunk as Buffer);
    } catch (err) {
      throw fromSystemError(err, 'cannot read', file);
    }
    const sha256 = hash.digest('hex');
    this.remember(file, st, sha256);
    return { sha256 };
  }

  remember(file: string, st: fs.Stats, sha256: string): void {
    this.#entries[file] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 };
    this.#dirty = true;
  }

  async save(): Promise<void> {
    if (!this.#dirty) return;
    try {
      await fsp.mkdir(path.dirname(this.#file), { recursive: true });
      await writeFileAtomic(this.#file, JSON.stringify(this.#entries));
      this.#dirty = false;
    } catch {
      // Only a cache: the next run hashes again.
    }
  }
}

export interface PrereqOptions {
  /** The prereq list; default prereqs.toml. */
  file?: string;
  /** --var key=value: override [vars]. */
  vars?: Readonly<Record<string, string>>;
  /** Default `<dir>/out/.slipway/downloads`. */
  cacheDir?: string;
  reporter?: Reporter;
}

export interface PrereqFetchOptions extends PrereqOptions {
  /** Downloads at once; default os.availableParallelism(). */
  jobs?: number;
  offline?: boolean;
  signal?: AbortSignal;
  /** Passed to download(): attempts after the first, and the first backoff. */
  retries?: number;
  backoffMs?: number;
}

function stateDir(list: PrereqList): string {
  return path.join(list.dir, 'out', '.slipway');
}

function load(options: PrereqOptions): { list: PrereqList; cacheDir: string; digests: DestDigests } {
  const list = loadPrereqs(options.file ?? DEFAULT_PREREQS_FILE, options.vars ?? {});
  for (const w of list.warnings) warn(options.reporter ?? silentReporter, `${w.where}: ${w.message}`);
  const cacheDir = path.resolve(options.cacheDir ?? path.join(stateDir(list), 'downloads'));
  return { list, cacheDir, digests: new DestDigests(path.join(stateDir(list), 'prereq-digests.json')) };
}

function cachePath(cacheDir: string, sha256: string): string {
  // fetchCached's layout: <cache>/sha256/<hex>.
  return path.join(cacheDir, 'sha256', sha256);
}

export type PrereqCheckState = 'ok' | 'missing' | 'stale';

export interface PrereqCheck {
  name: string;
  state: PrereqCheckState;
  dest: string;
  url: string;
  sha256: string;
  pinnedBy: string;
  /** What dest holds now, when it is stale (absent when it is not a regular file). */
  actual?: string;
  /** Whether the pinned bytes are in the download cache (fetch --offline would work). */
  inCache: boolean;
}

export interface PrereqCheckResult {
  file: string;
  ok: boolean;
  prereqs: PrereqCheck[];
  warnings: PrereqWarning[];
}

/** Each dest against its pin, with no network: ok, missing, or stale (another sha256). */
export async function checkPrereqs(options: PrereqOptions = {}): Promise<PrereqCheckResult> {
  const { list, cacheDir, digests } = load(options);
  const prereqs = await Promise.all(
    list.prereqs.map(async (p): Promise<PrereqCheck> => {
      const have = await digests.inspect(p.dest);
      const state: PrereqCheckState =
        have === undefined ? 'missing' : have.sha256 === p.sha256 ? 'ok' : 'stale';
      const r: PrereqCheck = {
        name: p.name,
        state,
        dest: p.dest,
        url: p.url,
        sha256: p.sha256,
        pinnedBy: p.pinnedBy,
        inCache: fs.existsSync(cachePath(cacheDir, p.sha256)),
      };
      if (state === 'stale' && have?.sha256 !== undefined) r.actual = have.sha256;
      return r;
    }),
  );
  await digests.save();
  return {
    file: list.file,
    ok: prereqs.every((p) => p.state === 'ok'),
    prereqs,
    warnings: list.warnings,
  };
}

/** 'cached': dest already held the pin, nothing done. */
export type PrereqFetchState =
  'downloaded' | 'from-cache' | 'cached' | 'failed' | 'cancelled' | 'not-run' | 'dependency-failed';

export interface PrereqFetch {
  name: string;
  state: PrereqFetchState;
  dest: string;
  url: string;
  sha256: string;
  logFile: string;
  error?: SlipwayError;
}

export interface PrereqFetchResult {
  file: string;
  cacheDir: string;
  ok: boolean;
  failed?: string;
  prereqs: PrereqFetch[];
  report: GraphReport;
  warnings: PrereqWarning[];
}

interface PendingCopy {
  sha256: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Copies the cached file towards dest through a temp file, hashing as it
 * goes; the caller commits only when the hash is the pin, so a damaged cache
 * entry never reaches dest. A copy rather than a hard link, so editing dest
 * in place cannot corrupt the cache behind it.
 */
async function copyFromCache(src: string, dest: string, signal: AbortSignal): Promise<PendingCopy> {
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const out = await openAtomic(dest);
  const hash = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(src, { highWaterMark: 1 << 20 })) {
      if (signal.aborted) throw new SlipwayError('INTERRUPTED', 'cancelled');
      hash.update(chunk as Buffer);
      await out.write(chunk as Buffer);
    }
  } catch (err) {
    await out.abort();
    throw fromSystemError(err, 'cannot copy from the cache', src);
  }
  return { sha256: hash.digest('hex'), commit: () => out.commit(), abort: () => out.abort() };
}

/**
 * Downloads every prereq whose dest does not hold its pin, in parallel, and
 * puts it at dest. Never throws for a failed download: the result says what
 * happened to each (the first failure cancels the rest, as on any job graph).
 */
export async function fetchPrereqs(options: PrereqFetchOptions = {}): Promise<PrereqFetchResult> {
  const { list, cacheDir, digests } = load(options);
  const states = new Map<string, PrereqFetchState>();
  const fetchOptions: CacheFetchOptions = {
    cacheDir,
    ...(options.offline !== undefined ? { offline: options.offline } : {}),
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
    ...(options.backoffMs !== undefined ? { backoffMs: options.backoffMs } : {}),
  };

  const fetchOne = async (p: Prereq, jc: JobContext): Promise<{ cached?: boolean; detail?: string }> => {
    const have = await digests.inspect(p.dest);
    if (have?.sha256 === p.sha256) {
      states.set(p.name, 'cached');
      return { cached: true, detail: 'up to date' };
    }
    if (have !== undefined)
      jc.log(`${p.dest}: sha256 ${have.sha256 ?? '(not a file)'} is not the pin; replacing`);
    for (let attempt = 0; ; attempt++) {
      const got = await fetchCached(p.url, p.sha256, {
        ...fetchOptions,
        signal: jc.signal,
        onRetry: (n, why) => {
          jc.log(`retry ${n}: ${why}`);
        },
      });
      const copy = await copyFromCache(got.path, p.dest, jc.signal);
      if (copy.sha256 === p.sha256) {
        await copy.commit();
        digests.remember(p.dest, await fsp.stat(p.dest), p.sha256);
        const state = got.cached ? 'from-cache' : 'downloaded';
        states.set(p.name, state);
        return { detail: `${state}: ${got.size} bytes, sha256 ${p.sha256}` };
      }
      await copy.abort();
      // A cache entry is named by its content; one that is not was damaged
      // on disk. Drop it and download once more (offline, there is no more).
      await fsp.rm(got.path, { force: true });
      if (!got.cached || attempt > 0 || options.offline === true) {
        throw new SlipwayError(
          'CHECKSUM_MISMATCH',
          `prereq '${p.name}': cached ${got.path} has sha256 ${copy.sha256}, expected ${p.sha256} (removed it; run again${options.offline === true ? ' without --offline' : ''})`,
          { where: got.path },
        );
      }
      jc.log(`cache entry ${got.path} was damaged (sha256 ${copy.sha256}); downloading again`);
    }
  };

  const report = await runGraph(
    list.prereqs.map((p) => ({
      name: p.name,
      deps: [],
      describe: `${p.url} -> ${p.dest} (sha256 ${p.sha256})`,
      run: (jc: JobContext) => fetchOne(p, jc),
    })),
    {
      logDir: path.join(stateDir(list), 'logs', 'prereq'),
      ...(options.reporter !== undefined ? { reporter: options.reporter } : {}),
      ...(options.jobs !== undefined ? { concurrency: options.jobs } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    },
  );
  await digests.save();

  const byName = new Map(list.prereqs.map((p) => [p.name, p]));
  const prereqs = report.jobs.map((j): PrereqFetch => {
    const p = byName.get(j.name) as Prereq;
    const r: PrereqFetch = {
      name: p.name,
      state: j.state === 'ok' || j.state === 'cached' ? (states.get(p.name) ?? 'downloaded') : j.state,
      dest: p.dest,
      url: p.url,
      sha256: p.sha256,
      logFile: j.logFile,
    };
    if (j.error !== undefined) r.error = j.error;
    return r;
  });
  // Keep the list's order (the graph orders by name) so output reads like the file.
  const order = new Map(list.prereqs.map((p, i) => [p.name, i]));
  prereqs.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
  const result: PrereqFetchResult = {
    file: list.file,
    cacheDir,
    ok: report.ok,
    prereqs,
    report,
    warnings: list.warnings,
  };
  if (report.failed !== undefined) result.failed = report.failed;
  return result;
}
