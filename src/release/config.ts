/**
 * release.toml and the version file of a product's repository, parsed into
 * a typed configuration (specs/release-process.md). Pure: no fs, no git;
 * the caller reads the files and passes their text. Every validation error
 * is RELEASE_CONFIG_INVALID naming file:line and the key.
 *
 * release.toml:
 *
 *   [product]
 *   name = "widget"                 # tarball names, S3 keys (letters, digits, . _ + -)
 *   display_name = "Widget"         # release-note headers (default: name)
 *   version_file = "version.json"   # {"version", "release_name", "official_release"} (Lix's)
 *
 *   [notes]
 *   fragments = "doc/manual/rl-next"             # *.md fragments with YAML front matter
 *   authors = "doc/manual/change-authors.yml"    # see notes.ts for the format
 *   output_dir = "doc/manual/src/release-notes"  # rl-<MAJOR>.md goes here
 *   summary = "doc/manual/src/SUMMARY.md"        # optional: the docs' table of contents …
 *   summary_marker = "<!-- release notes -->"    # … the new page goes after this line
 *   summary_entry = "  - [Release {major} ({date})](release-notes/rl-{major}.md)"  # (default)
 *   [notes.links]                                # optional link templates ({id})
 *   issues = "https://github.com/o/widget/issues/{id}"
 *   prs = "https://github.com/o/widget/pull/{id}"
 *   cls = "https://gerrit.example/c/widget/+/{id}"
 *
 *   [build]
 *   out = "out/release/{version}"   # (default)
 *   docs = "doc/manual/book"        # optional: a docs directory in the repository
 *   [[build.jobs]]
 *   name = "tarballs"
 *   command = ["sh", "scripts/build.sh", "{version}", "{work}"]   # argv, no shell
 *   deps = []                       # other jobs of this table
 *   artifacts = ["widget-{version}-x86_64-linux.tar.gz"]   # files the job leaves in {work}
 *   docs = "html"                   # optional: a directory under {work} → docs/
 *   oci = { widget = "layout" }     # optional: OCI layouts under {work} → oci/<name>/
 *
 *   [environments.staging]
 *   git_remote = "origin"
 *   confirm = false                 # typed confirmation; default true only for "production"
 *   [environments.staging.s3]
 *   endpoint = "https://s3.example.net"   # optional (AWS's own endpoint otherwise)
 *   region = "us-east-1"
 *   force_path_style = false        # default: true when an endpoint is given
 *   releases_bucket = "widget-releases"
 *   docs_bucket = "widget-docs"     # optional: no docs sync without it
 *   [[environments.staging.registries]]
 *   target = "registry.example.net/widget"   # REGISTRY/REPOSITORY
 *   layout = "widget"               # oci/<layout>/ of the build
 *   tags = ["{version}", "{major}", "latest"]
 *   insecure = false                # plain HTTP (a local registry)
 *   ca_file = "/etc/ssl/registry.pem"   # optional
 *
 * Credentials never go in the file: S3 uses the AWS environment/config
 * chain, registries their auth file or environment; a key that looks like a
 * secret is refused.
 *
 * Placeholders: `{version}`, `{major}`, `{product}` everywhere a template is
 * allowed; commands also get `{name}` (release name), `{commit}`, `{work}`
 * (the job's scratch directory) and `{repo}` (the repository root). A
 * command whose first word is `slipway` runs this Slipway (so `slipway
 * releng …` and `slipway oci build …` are jobs like any other).
 *
 * Tag templates: `{version}` and `{major}` expand; the literal `latest` is
 * pushed only when the release is the newest one (no release tag of a higher
 * version exists): a maintenance release of an older MAJOR never moves it.
 */
import { SlipwayError } from '../core/errors.js';
import { TomlChecker, describe, type ManifestWarning } from '../formats/toml-checker.js';
import { parseTomlLocated, type KeySegment } from '../formats/toml-located.js';

export const RELEASE_CONFIG_FILE = 'release.toml';

export interface VersionInfo {
  /** `2.96.1`, `2.96.0-rc1` */
  version: string;
  /** The first two components: `2.96`. */
  major: string;
  /** The release name, `"Wiggly"` in the headers. */
  name: string;
  official: boolean;
}

export interface NotesConfig {
  fragments: string;
  authors: string;
  outputDir: string;
  summary?: { file: string; marker: string; entry: string };
  links: { issues?: string; prs?: string; cls?: string };
}

export interface BuildJobConfig {
  name: string;
  command: string[];
  deps: string[];
  /** File-name templates: files the job leaves in its work directory. */
  artifacts: string[];
  /** A directory under the work directory that becomes the build's docs/. */
  docs?: string;
  /** OCI layout name → directory under the work directory; becomes oci/<name>/. */
  oci: Record<string, string>;
  line: number;
}

export interface RegistryTarget {
  /** `REGISTRY/REPOSITORY` */
  target: string;
  /** The build's `oci/<layout>/`. */
  layout: string;
  tags: string[];
  insecure: boolean;
  caFile?: string;
  line: number;
}

export interface EnvironmentConfig {
  name: string;
  gitRemote: string;
  confirm: boolean;
  s3: {
    endpoint?: string;
    region: string;
    forcePathStyle: boolean;
    releasesBucket: string;
    docsBucket?: string;
  };
  registries: RegistryTarget[];
  line: number;
}

export interface ReleaseConfig {
  file: string;
  product: { name: string; displayName: string; versionFile: string };
  notes: NotesConfig;
  build: { out: string; docs?: string; jobs: BuildJobConfig[] };
  environments: Record<string, EnvironmentConfig>;
  warnings: ManifestWarning[];
}

type Path = readonly KeySegment[];
type Table = Record<string, unknown>;

export const PRODUCT_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ENV_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
/** MAJOR.MINOR[.PATCH][-pre][+build]: what a tag, a key segment and a file name can all hold. */
const VERSION = /^(\d+)\.(\d+)(?:\.\d+)*(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
/** Keys that would hold a credential: refused, whatever table they are in. */
const SECRET_KEY = /secret|password|passwd|token|access_key|credential/i;

const TEMPLATE_VARS = ['version', 'major', 'product'] as const;
const COMMAND_VARS = [...TEMPLATE_VARS, 'name', 'commit', 'work', 'repo'] as const;
export type TemplateVars = Record<(typeof TEMPLATE_VARS)[number], string>;
export type CommandVars = Record<(typeof COMMAND_VARS)[number], string>;

/** Replaces `{var}`; an unknown `{…}` was refused at parse time, so none is left. */
export function expandTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(/\{([a-z_]+)\}/g, (m, k: string) => vars[k] ?? m);
}

function checkTemplate(c: TomlChecker, text: string, path: Path, allowed: readonly string[]): string {
  for (const m of text.matchAll(/\{([^}]*)\}/g)) {
    if (!allowed.includes(m[1] ?? '')) {
      c.fail(path, `unknown placeholder ${m[0]} (known: ${allowed.map((a) => `{${a}}`).join(', ')})`);
    }
  }
  return text;
}

/** A relative path inside the repository (or work directory): no absolute path, no `..`. */
function relPath(c: TomlChecker, v: unknown, path: Path): string {
  const s = c.string(v, path);
  if (s === '' || s.startsWith('/') || s.split(/[\\/]/).includes('..') || s.includes('\0')) {
    c.fail(path, `must be a relative path inside the repository, found ${JSON.stringify(s)}`);
  }
  return s.replace(/\/+$/, '');
}

function optionalBoolean(c: TomlChecker, t: Table, key: string, path: Path): boolean | undefined {
  const v = t[key];
  return v === undefined ? undefined : c.boolean(v, [...path, key]);
}

function stringArray(c: TomlChecker, v: unknown, path: Path): string[] {
  return c.array(v, path).map((s, i) => c.string(s, [...path, i]));
}

/** Refuses keys that look like credentials anywhere in the document. */
function noSecrets(c: TomlChecker, v: unknown, path: KeySegment[]): void {
  if (Array.isArray(v))
    v.forEach((x, i) => {
      noSecrets(c, x, [...path, i]);
    });
  else if (typeof v === 'object' && v !== null && !(v instanceof Date)) {
    for (const [k, x] of Object.entries(v as Table)) {
      if (SECRET_KEY.test(k)) {
        c.fail(
          [...path, k],
          'credentials do not belong in release.toml: S3 takes them from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS config, registries from their auth file',
        );
      }
      noSecrets(c, x, [...path, k]);
    }
  }
}

function product(c: TomlChecker, root: Table): ReleaseConfig['product'] {
  const p = ['product'];
  const t = c.table(c.required(root, 'product', []), p);
  c.unknownKeys(t, p, ['name', 'display_name', 'version_file']);
  const name = c.requiredString(t, 'name', p);
  if (!PRODUCT_NAME.test(name)) {
    c.fail([...p, 'name'], `${JSON.stringify(name)}: use letters, digits and . _ + - (not first), ≤ 64`);
  }
  const displayName = c.optionalString(t, 'display_name', p) ?? name;
  if (displayName === '' || /[\n\r]/.test(displayName)) c.fail([...p, 'display_name'], 'must be one line');
  const versionFile =
    t.version_file === undefined ? 'version.json' : relPath(c, t.version_file, [...p, 'version_file']);
  return { name, displayName, versionFile };
}

function notes(c: TomlChecker, root: Table): NotesConfig {
  const p = ['notes'];
  const t = c.table(c.required(root, 'notes', []), p);
  c.unknownKeys(t, p, [
    'fragments',
    'authors',
    'output_dir',
    'summary',
    'summary_marker',
    'summary_entry',
    'links',
  ]);
  const summaryFile = t.summary === undefined ? undefined : relPath(c, t.summary, [...p, 'summary']);
  const marker = c.optionalString(t, 'summary_marker', p);
  if ((summaryFile === undefined) !== (marker === undefined)) {
    c.fail(
      [...p, summaryFile === undefined ? 'summary_marker' : 'summary'],
      'give both summary and summary_marker, or neither',
    );
  }
  if (marker?.trim() === '') c.fail([...p, 'summary_marker'], 'must not be blank');
  const entry = checkTemplate(
    c,
    c.optionalString(t, 'summary_entry', p) ?? '  - [Release {major} ({date})](release-notes/rl-{major}.md)',
    [...p, 'summary_entry'],
    ['major', 'version', 'name', 'date'],
  );
  const links: NotesConfig['links'] = {};
  if (t.links !== undefined) {
    const lp = [...p, 'links'];
    const lt = c.table(t.links, lp);
    c.unknownKeys(lt, lp, ['issues', 'prs', 'cls']);
    for (const k of ['issues', 'prs', 'cls'] as const) {
      const v = c.optionalString(lt, k, lp);
      if (v === undefined) continue;
      if (!v.includes('{id}')) c.fail([...lp, k], 'a link template needs {id}');
      links[k] = checkTemplate(c, v, [...lp, k], ['id']);
    }
  }
  return {
    fragments: relPath(c, c.required(t, 'fragments', p), [...p, 'fragments']),
    authors: relPath(c, c.required(t, 'authors', p), [...p, 'authors']),
    outputDir: relPath(c, c.required(t, 'output_dir', p), [...p, 'output_dir']),
    ...(summaryFile !== undefined && marker !== undefined
      ? { summary: { file: summaryFile, marker, entry } }
      : {}),
    links,
  };
}

function job(c: TomlChecker, v: unknown, i: number): BuildJobConfig {
  const p = ['build', 'jobs', i];
  const t = c.table(v, p);
  c.unknownKeys(t, p, ['name', 'command', 'deps', 'artifacts', 'docs', 'oci']);
  const name = c.requiredString(t, 'name', p);
  if (!JOB_NAME.test(name)) c.fail([...p, 'name'], `invalid job name ${JSON.stringify(name)}`);
  const command = stringArray(c, c.required(t, 'command', p), [...p, 'command']);
  if (command.length === 0 || command[0] === '') c.fail([...p, 'command'], 'must name a program');
  command.forEach((a, j) => checkTemplate(c, a, [...p, 'command', j], COMMAND_VARS));
  const artifacts = t.artifacts === undefined ? [] : stringArray(c, t.artifacts, [...p, 'artifacts']);
  artifacts.forEach((a, j) => {
    const ap = [...p, 'artifacts', j];
    checkTemplate(c, a, ap, TEMPLATE_VARS);
    if (a === '' || a.includes('/') || a.includes('\\') || a.startsWith('.')) {
      c.fail(ap, `an artifact is a plain file name (no '/', not hidden), found ${JSON.stringify(a)}`);
    }
    if (a === 'manifest.json' || a.endsWith('.sha256')) {
      c.fail(ap, `${JSON.stringify(a)} is a name the build writes itself`);
    }
  });
  const oci: Record<string, string> = {};
  if (t.oci !== undefined) {
    const op = [...p, 'oci'];
    for (const [k, d] of Object.entries(c.table(t.oci, op))) {
      if (!JOB_NAME.test(k)) c.fail([...op, k], `invalid layout name ${JSON.stringify(k)}`);
      oci[k] = relPath(c, d, [...op, k]);
    }
  }
  const docs = t.docs === undefined ? undefined : relPath(c, t.docs, [...p, 'docs']);
  if (artifacts.length === 0 && docs === undefined && Object.keys(oci).length === 0) {
    c.fail(p, 'a job must produce something: artifacts, docs or oci');
  }
  return {
    name,
    command,
    deps: t.deps === undefined ? [] : stringArray(c, t.deps, [...p, 'deps']),
    artifacts,
    ...(docs !== undefined ? { docs } : {}),
    oci,
    line: c.line(p),
  };
}

function build(c: TomlChecker, root: Table): ReleaseConfig['build'] {
  const p = ['build'];
  const t = root.build === undefined ? {} : c.table(root.build, p);
  c.unknownKeys(t, p, ['out', 'docs', 'jobs']);
  const jobs = t.jobs === undefined ? [] : c.array(t.jobs, [...p, 'jobs']).map((v, i) => job(c, v, i));
  const names = new Set<string>();
  const artifacts = new Map<string, string>();
  const layouts = new Map<string, string>();
  let docsFrom: string | undefined;
  const docs = t.docs === undefined ? undefined : relPath(c, t.docs, [...p, 'docs']);
  if (docs !== undefined) docsFrom = 'build.docs';
  jobs.forEach((j, i) => {
    const jp = ['build', 'jobs', i];
    if (names.has(j.name)) c.fail([...jp, 'name'], `a second job named ${JSON.stringify(j.name)}`);
    names.add(j.name);
    for (const a of j.artifacts) {
      const other = artifacts.get(a);
      if (other !== undefined)
        c.fail([...jp, 'artifacts'], `${JSON.stringify(a)} is produced by job ${other} too`);
      artifacts.set(a, j.name);
    }
    for (const l of Object.keys(j.oci)) {
      const other = layouts.get(l);
      if (other !== undefined) c.fail([...jp, 'oci', l], `OCI layout ${l} is produced by job ${other} too`);
      layouts.set(l, j.name);
    }
    if (j.docs !== undefined) {
      if (docsFrom !== undefined) c.fail([...jp, 'docs'], `the docs come from ${docsFrom} already`);
      docsFrom = `job ${j.name}`;
    }
  });
  jobs.forEach((j, i) => {
    j.deps.forEach((d, k) => {
      if (!names.has(d)) c.fail(['build', 'jobs', i, 'deps', k], `no job named ${JSON.stringify(d)}`);
    });
  });
  const out = t.out === undefined ? 'out/release/{version}' : relPath(c, t.out, [...p, 'out']);
  checkTemplate(c, out, [...p, 'out'], TEMPLATE_VARS);
  return { out, ...(docs !== undefined ? { docs } : {}), jobs };
}

function registry(c: TomlChecker, v: unknown, p: Path, layouts: ReadonlySet<string>): RegistryTarget {
  const t = c.table(v, p);
  c.unknownKeys(t, p, ['target', 'layout', 'tags', 'insecure', 'ca_file']);
  const target = c.requiredString(t, 'target', p);
  if (!/^[A-Za-z0-9.-]+(:\d+)?\/[a-z0-9]+(?:[._/-][a-z0-9]+)*$/.test(target)) {
    c.fail(
      [...p, 'target'],
      `must be REGISTRY/REPOSITORY (e.g. registry.example.net/widget), found ${JSON.stringify(target)}`,
    );
  }
  const layout = c.requiredString(t, 'layout', p);
  if (!layouts.has(layout)) {
    c.fail(
      [...p, 'layout'],
      `no build job produces the OCI layout ${JSON.stringify(layout)} (build.jobs[].oci)`,
    );
  }
  const tags = stringArray(c, c.required(t, 'tags', p), [...p, 'tags']);
  if (tags.length === 0) c.fail([...p, 'tags'], 'at least one tag template');
  tags.forEach((tag, i) => {
    checkTemplate(c, tag, [...p, 'tags', i], TEMPLATE_VARS);
    // What a template can expand to must be a valid OCI tag.
    const sample = expandTemplate(tag, { version: '1.0.0-rc.1', major: '1.0', product: 'p' });
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(sample))
      c.fail([...p, 'tags', i], `${JSON.stringify(tag)} is not a valid tag`);
  });
  const caFile = c.optionalString(t, 'ca_file', p);
  return {
    target,
    layout,
    tags,
    insecure: optionalBoolean(c, t, 'insecure', p) ?? false,
    ...(caFile !== undefined ? { caFile } : {}),
    line: c.line(p),
  };
}

function environment(
  c: TomlChecker,
  name: string,
  v: unknown,
  layouts: ReadonlySet<string>,
): EnvironmentConfig {
  const p = ['environments', name];
  if (!ENV_NAME.test(name))
    c.fail(p, `invalid environment name ${JSON.stringify(name)} (lowercase letters, digits, - _)`);
  const t = c.table(v, p);
  c.unknownKeys(t, p, ['git_remote', 'confirm', 's3', 'registries']);
  const sp = [...p, 's3'];
  const s = c.table(c.required(t, 's3', p), sp);
  c.unknownKeys(s, sp, ['endpoint', 'region', 'force_path_style', 'releases_bucket', 'docs_bucket']);
  const endpoint = c.optionalString(s, 'endpoint', sp);
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+(\/.*)?$/.test(endpoint)) {
    c.fail([...sp, 'endpoint'], `must be an http(s) URL, found ${JSON.stringify(endpoint)}`);
  }
  if (endpoint !== undefined && /^https?:\/\/[^/]*@/.test(endpoint)) {
    // user:secret@host would put a credential in the file (and in every plan printed).
    c.fail([...sp, 'endpoint'], 'credentials do not belong in release.toml: give the endpoint without user@');
  }
  const bucket = (key: string): string | undefined => {
    const b = c.optionalString(s, key, sp);
    if (b !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(b)) {
      c.fail([...sp, key], `${JSON.stringify(b)} is not a valid bucket name`);
    }
    return b;
  };
  const releasesBucket = bucket('releases_bucket');
  if (releasesBucket === undefined) c.fail([...sp, 'releases_bucket'], 'required key is missing');
  const docsBucket = bucket('docs_bucket');
  const region = c.optionalString(s, 'region', sp) ?? 'us-east-1';
  const rp = [...p, 'registries'];
  const registries =
    t.registries === undefined
      ? []
      : c.array(t.registries, rp).map((r, i) => registry(c, r, [...rp, i], layouts));
  const gitRemote = c.optionalString(t, 'git_remote', p) ?? 'origin';
  if (gitRemote === '' || gitRemote.startsWith('-')) c.fail([...p, 'git_remote'], 'must name a git remote');
  return {
    name,
    gitRemote,
    confirm: optionalBoolean(c, t, 'confirm', p) ?? name === 'production',
    s3: {
      ...(endpoint !== undefined ? { endpoint } : {}),
      region,
      forcePathStyle: optionalBoolean(c, s, 'force_path_style', sp) ?? endpoint !== undefined,
      releasesBucket,
      ...(docsBucket !== undefined ? { docsBucket } : {}),
    },
    registries,
    line: c.line(p),
  };
}

/** Parses release.toml (`file` names it in errors). */
export function parseReleaseConfig(text: string, file: string): ReleaseConfig {
  let located;
  try {
    located = parseTomlLocated(text, file);
  } catch (err) {
    const e = err as SlipwayError;
    throw new SlipwayError('RELEASE_CONFIG_INVALID', e.message, {
      cause: err,
      ...(e.where !== undefined ? { where: e.where } : {}),
    });
  }
  const c = new TomlChecker(file, located, 'RELEASE_CONFIG_INVALID');
  const root = c.table(located.value, []);
  noSecrets(c, root, []);
  c.unknownKeys(root, [], ['product', 'notes', 'build', 'environments']);
  const prod = product(c, root);
  const n = notes(c, root);
  const b = build(c, root);
  const layouts = new Set(b.jobs.flatMap((j) => Object.keys(j.oci)));
  const environments: Record<string, EnvironmentConfig> = {};
  if (root.environments !== undefined) {
    for (const [name, v] of Object.entries(c.table(root.environments, ['environments']))) {
      environments[name] = environment(c, name, v, layouts);
    }
  }
  return { file, product: prod, notes: n, build: b, environments, warnings: c.warnings };
}

/** The 1-based line where `"key"` first appears in a JSON text (1 when it does not). */
function jsonLine(text: string, key: string): number {
  const i = text.search(new RegExp(`"${key}"\\s*:`));
  return i < 0 ? 1 : text.slice(0, i).split('\n').length;
}

/** Parses the version file: `{"version": "2.96.1", "release_name": "Wiggly", "official_release": false}`. */
export function parseVersionFile(text: string, file: string): VersionInfo {
  const fail = (key: string, message: string): never => {
    throw new SlipwayError('RELEASE_CONFIG_INVALID', `${key}: ${message}`, {
      where: `${file}:${jsonLine(text, key)}`,
    });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new SlipwayError('RELEASE_CONFIG_INVALID', `invalid JSON: ${(err as Error).message}`, {
      cause: err,
      where: file,
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new SlipwayError('RELEASE_CONFIG_INVALID', 'must hold a JSON object', { where: `${file}:1` });
  }
  const d = doc as Table;
  const version = d.version;
  if (typeof version !== 'string') return fail('version', `must be a string, found ${describe(version)}`);
  const m = VERSION.exec(version);
  if (m === null) return fail('version', `${JSON.stringify(version)} is not MAJOR.MINOR[.PATCH][-PRE]`);
  const name = d.release_name;
  if (typeof name !== 'string') return fail('release_name', `must be a string, found ${describe(name)}`);
  if (name.trim() === '' || /["\n\r\t]/.test(name))
    return fail('release_name', 'must be one line without double quotes');
  const official = d.official_release;
  if (typeof official !== 'boolean')
    return fail('official_release', `must be true or false, found ${describe(official)}`);
  return { version, major: `${m[1] ?? ''}.${m[2] ?? ''}`, name, official };
}

/**
 * The version file with `official_release` set to true (the tag step's
 * commit). Only that value changes; the rest of the text stays as it is.
 */
export function markOfficial(text: string, file: string): string {
  parseVersionFile(text, file);
  const re = /("official_release"\s*:\s*)(true|false)/;
  if (!re.test(text))
    throw new SlipwayError('RELEASE_CONFIG_INVALID', 'official_release: cannot find it to change', {
      where: file,
    });
  return text.replace(re, '$1true');
}

/** The named environment, or RELEASE_ENV_INVALID listing the ones there are. */
export function environmentOf(config: ReleaseConfig, name: string): EnvironmentConfig {
  const env = config.environments[name];
  if (env === undefined) {
    const known = Object.keys(config.environments);
    throw new SlipwayError(
      'RELEASE_ENV_INVALID',
      `no environment ${JSON.stringify(name)} in ${config.file} (${known.length > 0 ? `known: ${known.join(', ')}` : 'it defines none'})`,
      { where: `${config.file}: environments.${name}` },
    );
  }
  return env;
}

/** Compares release versions numerically; a pre-release sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string): { nums: number[]; pre: string } => {
    const [core = '', pre = ''] = v.split('+')[0]?.split(/-(.*)/s) ?? [];
    return { nums: core.split('.').map(Number), pre };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.nums.length, y.nums.length); i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === '') return 1;
  if (y.pre === '') return -1;
  return x.pre < y.pre ? -1 : 1;
}

/** Whether `version` is the newest among the repository's release tags (tags that are not versions are ignored). */
export function isNewestRelease(version: string, tags: readonly string[]): boolean {
  return tags.every((t) => !VERSION.test(t) || compareVersions(t, version) <= 0);
}

/**
 * A registry target's tags for this release: templates expanded, `latest`
 * dropped unless `newest`, duplicates removed (a `{major}` equal to the version).
 */
export function expandTags(
  templates: readonly string[],
  v: VersionInfo,
  productName: string,
  newest: boolean,
): string[] {
  const out: string[] = [];
  for (const t of templates) {
    if (t === 'latest' && !newest) continue;
    const tag = expandTemplate(t, { version: v.version, major: v.major, product: productName });
    if (!out.includes(tag)) out.push(tag);
  }
  return out;
}

/** The values a template may use. */
export function templateVars(config: ReleaseConfig, v: VersionInfo): TemplateVars {
  return { version: v.version, major: v.major, product: config.product.name };
}

/** Whether a string is a release version as the version file allows. */
export function isVersion(s: string): boolean {
  return VERSION.test(s);
}
