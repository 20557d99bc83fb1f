/**
 * What a consumer checks when a repository is uploaded (specs/tuf-repo.md,
 * "What a consumer checks on upload"), each failure with its own code,
 * through `verifyRepositoryZip`; where the assembler can be made to write
 * the bad repository it is, and where it refuses, that is asserted too.
 * Zips it would never write are crafted here: signed metadata from
 * `buildRepositoryMetadata`, written with ZipWriter, or with a raw zip
 * writer for entry names ZipWriter refuses.
 * Also: assembly is reproducible, and a failed one leaves nothing behind.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { SlipwayError, type ErrorCode } from '../../src/core/errors.js';
import {
  encodeArtifactsDocument,
  targetNameOf,
  type ArtifactEntry,
} from '../../src/formats/repo-artifacts.js';
import { buildRepositoryMetadata, targetPathFor } from '../../src/formats/tuf/build.js';
import { generateKey } from '../../src/formats/tuf/keys.js';
import { assembleRepository, type AssembleOptions, type AssembleResult } from '../../src/repo/assemble.js';
import { memoryMember, writeComposite, writeFakeZone } from '../../src/repo/composite.js';
import { loadSigners } from '../../src/repo/keys.js';
import { verifyRepositoryZip, type VerifyResult } from '../../src/repo/verify.js';
import { rawZip, repoVector, sha256, writeZip, type ZipFileEntry } from '../helpers/fake-repo.js';
import { tempDir } from '../helpers/tmp.js';

const KEY = generateKey();
const SIGNERS = loadSigners({ keys: [KEY.text], env: {} }).signers;
const NOW = new Date('2026-03-01T12:00:00Z');
const WEEK = 7 * 24 * 3600 * 1000;

function hasCode(code: ErrorCode): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof SlipwayError, `expected a SlipwayError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, `${err.code}: ${err.message} (${err.where ?? ''})`);
    return true;
  };
}

function verify(file: string, opts: { skipAllPresent?: boolean } = {}): Promise<VerifyResult> {
  return verifyRepositoryZip(file, { now: NOW, ...opts });
}

// ---------------------------------------------------------------------------
// inputs

/** A directory holding `manifest.toml` and the given input files. */
function inputDir(manifest: string, files: Record<string, string | Buffer> = {}): string {
  const dir = tempDir('slipway-upload-in-');
  fs.writeFileSync(path.join(dir, 'manifest.toml'), manifest);
  for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), data);
  return dir;
}

async function assembleFrom(
  dir: string,
  opts: Partial<AssembleOptions> & { outDir?: string } = {},
): Promise<AssembleResult> {
  const { outDir, ...rest } = opts;
  return assembleRepository({
    manifestFile: path.join(dir, 'manifest.toml'),
    output: path.join(outDir ?? tempDir('slipway-upload-out-'), 'repo.zip'),
    signers: SIGNERS,
    now: NOW,
    ...rest,
  });
}

/** A composite image (gzip ustar, oxide.json first) of type `t` holding `members`. */
async function composite(
  file: string,
  t: 'os' | 'rot' | 'control_plane',
  members: Record<string, string | Buffer>,
): Promise<Buffer> {
  await writeComposite(
    file,
    t,
    Object.entries(members).map(([name, data]) => memoryMember(name, Buffer.from(data))),
    { mtime: 0 },
  );
  return fs.readFileSync(file);
}

const scratch = tempDir('slipway-upload-scratch-');
let scratchN = 0;
const scratchFile = (name: string): string => path.join(scratch, `${scratchN++}-${name}`);

/** A host image as it must be: t=os with a phase-1 ROM and image/zfs.img. */
const goodHost = (tag: string): Promise<Buffer> =>
  composite(scratchFile('host.tar.gz'), 'os', {
    'image/gimlet.rom': `gimlet rom ${tag}\n`,
    'image/zfs.img': `zfs image ${tag}\n`,
  });

/** A t=os image: not a layer, so not a zone. */
const osZone = (): Promise<Buffer> =>
  composite(scratchFile('os-zone.tar.gz'), 'os', { 'image/zfs.img': 'not a zone\n' });

/** Only a gimlet SP (fake): every other required kind is missing. */
const SP_ONLY = `system_version = "1.0.0"
[[artifact.gimlet_sp]]
name = "sp"
version = "1.0.0"
source = { kind = "fake", size = "1KiB" }
`;

/** One artifact taken as is from the input file `file`. */
const fileInput = (kind: string, name: string, file: string, data: Buffer): string =>
  inputDir(
    `system_version = "1.0.0"
[[artifact.${kind}]]
name = "${name}"
version = "1.0.0"
source = { kind = "file", path = "${file}" }
`,
    { [file]: data },
  );

/** Two gimlet SPs from one file: the same (kind, sha256) twice. */
const sameBytesTwice = (): string =>
  inputDir(
    `system_version = "1.0.0"
[[artifact.gimlet_sp]]
name = "sp-a"
version = "1.0.0"
source = { kind = "file", path = "same.bin" }
[[artifact.gimlet_sp]]
name = "sp-b"
version = "1.0.0"
source = { kind = "file", path = "same.bin" }
`,
    { 'same.bin': 'the same bytes\n' },
  );

// ---------------------------------------------------------------------------
// crafted zips

interface CraftArtifact {
  kind: string;
  name: string;
  version?: string;
  data: Buffer;
}

interface Craft {
  artifacts: CraftArtifact[];
  /** artifacts.json entries whose targets the metadata does not sign (stored under their plain names). */
  unsigned?: CraftArtifact[];
  /** Targets stored under their plain name instead of `<sha256>.<name>`. */
  plainNames?: string[];
  /** More zip entries, names as given. */
  extraEntries?: ZipFileEntry[];
  /** Write with rawZip instead of ZipWriter (implied by extraEntries). */
  raw?: boolean;
}

function targetOf(a: CraftArtifact): ArtifactEntry {
  const version = a.version ?? '1.0.0';
  return { name: a.name, version, kind: a.kind, target: targetNameOf(a.kind, a.name, version) };
}

/** A signed repository zip holding `c.artifacts` (and artifacts.json), broken as `c` says. */
async function craftRepoZip(c: Craft): Promise<string> {
  const targets = new Map<string, Buffer>();
  for (const a of c.artifacts) targets.set(targetOf(a).target, a.data);
  const unsigned = c.unsigned ?? [];
  const doc = encodeArtifactsDocument({
    system_version: '1.0.0',
    artifacts: [...c.artifacts, ...unsigned].map(targetOf),
  });
  targets.set('artifacts.json', doc);
  const inputs = Object.fromEntries(
    [...targets].map(([name, data]) => [name, { length: data.length, sha256: sha256(data) }]),
  );
  const { files } = await buildRepositoryMetadata({
    signers: SIGNERS,
    expires: new Date(NOW.getTime() + WEEK),
    version: 1,
    targets: inputs,
  });
  const entries: ZipFileEntry[] = [];
  for (const [name, data] of files) entries.push({ name: `repo/metadata/${name}`, data });
  for (const [name, data] of targets) {
    const stored = c.plainNames?.includes(name) === true ? name : targetPathFor(name, sha256(data));
    entries.push({ name: `repo/targets/${stored}`, data });
  }
  for (const u of unsigned) entries.push({ name: `repo/targets/${targetOf(u).target}`, data: u.data });
  entries.push(...(c.extraEntries ?? []));

  const file = scratchFile('crafted.zip');
  if (c.raw === true || c.extraEntries !== undefined) fs.writeFileSync(file, rawZip(entries));
  else await writeZip(file, entries);
  return file;
}

const SP: CraftArtifact = { kind: 'gimlet_sp', name: 'sp', data: Buffer.from('service processor image\n') };

// ---------------------------------------------------------------------------

test('crafted repositories (ZipWriter and raw zip alike) pass every check', async () => {
  const host = await goodHost('a');
  for (const raw of [false, true]) {
    const zip = await craftRepoZip({ artifacts: [SP, { kind: 'host', name: 'host', data: host }], raw });
    const r = await verify(zip, { skipAllPresent: true });
    assert.deepEqual(
      r.artifacts.map((a) => [a.kind, a.sha256]),
      [
        ['gimlet_sp', sha256(SP.data)],
        ['host', sha256(host)],
      ],
    );
    assert.equal(r.sha256, sha256(fs.readFileSync(zip)));
  }
});

describe('§6 duplicates and missing kinds', () => {
  test('a second host: the assembler refuses, and so does the verifier (REPO_DUPLICATE_ARTIFACT)', async () => {
    const dir = inputDir(`system_version = "1.0.0"
[[artifact.host]]
name = "host-a"
version = "1.0.0"
source = { kind = "fake", size = "4KiB" }
[[artifact.host]]
name = "host-b"
version = "1.0.0"
source = { kind = "fake", size = "4KiB" }
`);
    await assert.rejects(assembleFrom(dir, { skipAllPresent: true }), hasCode('REPO_DUPLICATE_ARTIFACT'));

    const zip = await craftRepoZip({
      artifacts: [
        { kind: 'host', name: 'host-a', data: await goodHost('a') },
        { kind: 'host', name: 'host-b', data: await goodHost('b') },
      ],
    });
    await assert.rejects(verify(zip, { skipAllPresent: true }), hasCode('REPO_DUPLICATE_ARTIFACT'));
  });

  test('the same (kind, sha256) twice: the assembler refuses, and so does the verifier', async () => {
    const dir = sameBytesTwice();
    await assert.rejects(assembleFrom(dir, { skipAllPresent: true }), hasCode('REPO_DUPLICATE_ARTIFACT'));

    const zip = await craftRepoZip({ artifacts: [SP, { ...SP, name: 'sp-again' }] });
    await assert.rejects(verify(zip, { skipAllPresent: true }), hasCode('REPO_DUPLICATE_ARTIFACT'));
  });

  test('missing required kinds: REPO_MISSING_KIND from the assembler and the verifier', async () => {
    const dir = inputDir(SP_ONLY);
    await assert.rejects(assembleFrom(dir), hasCode('REPO_MISSING_KIND'));
    const r = await assembleFrom(dir, { skipAllPresent: true });
    await assert.rejects(verify(r.output), hasCode('REPO_MISSING_KIND'));
    // The same zip is fine when missing kinds are allowed.
    const ok = await verify(r.output, { skipAllPresent: true });
    assert.deepEqual(
      ok.artifacts.map((a) => a.kind),
      ['gimlet_sp', 'installinator_document'],
    );
  });
});

describe('§5 artifact content', () => {
  test('a control-plane zone that is not a layer (t=os): REPO_ARTIFACT_CONTENT', async () => {
    const zone = await osZone();
    // The assembler checks zones it composes itself before writing anything.
    const composed = inputDir(
      `system_version = "1.0.0"
[[artifact.control_plane]]
name = "cp"
version = "1.0.0"
[artifact.control_plane.source]
kind = "composite-control-plane"
zones = [ { kind = "file", path = "os-zone.tar.gz" } ]
`,
      { 'os-zone.tar.gz': zone },
    );
    await assert.rejects(assembleFrom(composed, { skipAllPresent: true }), hasCode('REPO_ARTIFACT_CONTENT'));

    // A prebuilt control-plane archive holding it: the assembler refuses it too (before writing),
    // and a repository that holds it anyway (made by another tool) fails verification.
    const cp = await composite(scratchFile('cp.tar.gz'), 'control_plane', { 'zones/os-zone.tar.gz': zone });
    const prebuilt = fileInput('control_plane', 'cp', 'cp.tar.gz', cp);
    await assert.rejects(assembleFrom(prebuilt, { skipAllPresent: true }), hasCode('REPO_ARTIFACT_CONTENT'));
    const crafted = await craftRepoZip({ artifacts: [{ kind: 'control_plane', name: 'cp', data: cp }] });
    await assert.rejects(verify(crafted, { skipAllPresent: true }), hasCode('REPO_ARTIFACT_CONTENT'));

    // And with a layer zone in its place, the same archive passes.
    const layer = scratchFile('layer-zone.tar.gz');
    await writeFakeZone(layer, 'nexus', '1.0.0', 100);
    const good = await composite(scratchFile('cp.tar.gz'), 'control_plane', {
      'zones/nexus.tar.gz': fs.readFileSync(layer),
    });
    const zip = await craftRepoZip({ artifacts: [{ kind: 'control_plane', name: 'cp', data: good }] });
    const ok = await verify(zip, { skipAllPresent: true });
    assert.deepEqual(ok.artifacts[0]?.zones, [
      { file: 'zones/nexus.tar.gz', pkg: 'nexus', version: '1.0.0' },
    ]);
  });

  test('a host archive without image/zfs.img: REPO_ARTIFACT_CONTENT', async () => {
    const host = await composite(scratchFile('host.tar.gz'), 'os', { 'image/gimlet.rom': 'rom only\n' });
    const dir = fileInput('host', 'host', 'host.tar.gz', host);
    await assert.rejects(assembleFrom(dir, { skipAllPresent: true }), hasCode('REPO_ARTIFACT_CONTENT'));
    const crafted = await craftRepoZip({ artifacts: [{ kind: 'host', name: 'host', data: host }] });
    await assert.rejects(verify(crafted, { skipAllPresent: true }), hasCode('REPO_ARTIFACT_CONTENT'));
  });
});

describe('§2 zip entries: files only, under repo/, no ..', () => {
  const HOSTILE: { name: string; entry: ZipFileEntry; code: ErrorCode }[] = [
    { name: 'repo/../x', entry: { name: 'repo/../x', data: Buffer.from('x') }, code: 'ZIP_PATH_UNSAFE' },
    { name: '/abs', entry: { name: '/abs', data: Buffer.from('x') }, code: 'ZIP_PATH_UNSAFE' },
    {
      name: 'a directory entry repo/targets/',
      entry: { name: 'repo/targets/', data: Buffer.alloc(0) },
      code: 'ZIP_PATH_UNSAFE',
    },
    {
      name: 'an entry outside repo/ (other/x)',
      entry: { name: 'other/x', data: Buffer.from('x') },
      code: 'ZIP_PATH_UNSAFE',
    },
  ];
  for (const h of HOSTILE) {
    test(`${h.name}: ${h.code}`, async () => {
      const zip = await craftRepoZip({ artifacts: [SP], extraEntries: [h.entry] });
      await assert.rejects(verify(zip, { skipAllPresent: true }), hasCode(h.code));
    });
  }
});

describe('§4 artifacts.json and the targets', () => {
  test('artifacts.json naming a target the metadata does not sign: REPO_ARTIFACTS_INVALID', async () => {
    const zip = await craftRepoZip({
      artifacts: [SP],
      unsigned: [{ kind: 'psc_sp', name: 'ghost', data: Buffer.from('not signed\n') }],
    });
    await assert.rejects(verify(zip, { skipAllPresent: true }), hasCode('REPO_ARTIFACTS_INVALID'));
  });

  test('a target stored without its hash prefix: REPO_LAYOUT_INVALID', async () => {
    const zip = await craftRepoZip({ artifacts: [SP], plainNames: [targetOf(SP).target] });
    await assert.rejects(verify(zip, { skipAllPresent: true }), hasCode('REPO_LAYOUT_INVALID'));
  });
});

// ---------------------------------------------------------------------------
// reproducibility and failed assemblies

/** Every required kind, small; the host's phase 1 is a real file (so the clock reaches its tarball). */
const ALL_KINDS = repoVector('all-kinds.toml');

describe('reproducible assembly', () => {
  test('same manifest, key and clock: byte-identical zips and .sha256.txt; another clock differs', async () => {
    const dir = inputDir(ALL_KINDS, { 'rom.bin': 'phase one rom\n' });
    const run = async (now: Date): Promise<{ r: AssembleResult; zip: Buffer; sum: string }> => {
      const r = await assembleFrom(dir, { now });
      return { r, zip: fs.readFileSync(r.output), sum: fs.readFileSync(`${r.output}.sha256.txt`, 'utf8') };
    };
    const a = await run(NOW);
    const b = await run(NOW);
    assert.notEqual(a.r.output, b.r.output);
    assert.equal(sha256(a.zip), sha256(b.zip));
    assert.ok(a.zip.equals(b.zip));
    assert.equal(a.sum, b.sum);
    assert.equal(a.sum, `${sha256(a.zip)}\n`);
    assert.equal(a.r.sha256, sha256(a.zip));
    assert.deepEqual(a.r.artifacts, b.r.artifacts);

    const c = await run(new Date(NOW.getTime() + 1000));
    assert.notEqual(sha256(c.zip), sha256(a.zip));
    assert.notEqual(c.sum, a.sum);

    // The repository itself passes every upload check, all kinds required.
    const v = await verify(a.r.output);
    assert.equal(v.sha256, a.r.sha256);
    assert.equal(v.canonicalName, 'system-update-v3.1.0.zip');
    assert.equal(v.artifacts.length, a.r.artifacts.length + 1); // + the installinator document
  });
});

describe('a failed assembly leaves nothing behind', () => {
  const FAILURES: {
    name: string;
    manifest: string;
    files?: () => Promise<Record<string, Buffer>>;
    code: ErrorCode;
  }[] = [
    {
      name: 'a manifest naming a missing file',
      manifest: `system_version = "1.0.0"
[[artifact.gimlet_sp]]
name = "sp"
version = "1.0.0"
source = { kind = "file", path = "missing.bin" }
`,
      code: 'NOT_FOUND',
    },
    {
      name: 'a zone that is not a layer',
      manifest: `system_version = "1.0.0"
[[artifact.control_plane]]
name = "cp"
version = "1.0.0"
[artifact.control_plane.source]
kind = "composite-control-plane"
zones = [ { kind = "fake", artifact_name = "ok", file_name = "ok.tar.gz", size = "1KiB" }, { kind = "file", path = "os-zone.tar.gz" } ]
`,
      files: async () => ({ 'os-zone.tar.gz': await osZone() }),
      code: 'REPO_ARTIFACT_CONTENT',
    },
    {
      name: 'a duplicate (kind, sha256) found while the zip is being written',
      manifest: `system_version = "1.0.0"
[[artifact.gimlet_sp]]
name = "sp-a"
version = "1.0.0"
source = { kind = "file", path = "same.bin" }
[[artifact.host]]
name = "host"
version = "1.0.0"
source = { kind = "fake", size = "8KiB" }
[[artifact.gimlet_sp]]
name = "sp-b"
version = "1.0.0"
source = { kind = "file", path = "same.bin" }
`,
      files: () => Promise.resolve({ 'same.bin': Buffer.from('the same bytes\n') }),
      code: 'REPO_DUPLICATE_ARTIFACT',
    },
  ];
  for (const f of FAILURES) {
    test(`${f.name}: ${f.code}; no zip, no .sha256.txt, no temp files`, async () => {
      const dir = inputDir(f.manifest, (await f.files?.()) ?? {});
      const outDir = tempDir('slipway-upload-out-');
      // The assembler's private build directory lives under os.tmpdir(): point it at one we can inspect.
      const tmp = tempDir('slipway-upload-tmp-');
      const savedTmp = process.env.TMPDIR;
      process.env.TMPDIR = tmp;
      try {
        await assert.rejects(assembleFrom(dir, { outDir, skipAllPresent: true }), hasCode(f.code));
      } finally {
        if (savedTmp === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = savedTmp;
      }
      assert.deepEqual(fs.readdirSync(outDir), []);
      assert.deepEqual(fs.readdirSync(tmp), []);
    });
  }

  test('a failed assembly over an earlier output leaves that output as it was', async () => {
    const outDir = tempDir('slipway-upload-out-');
    const good = inputDir(SP_ONLY);
    const r = await assembleFrom(good, { outDir, skipAllPresent: true });
    const before = { zip: fs.readFileSync(r.output), sum: fs.readFileSync(`${r.output}.sha256.txt`) };
    const bad = sameBytesTwice();
    await assert.rejects(
      assembleFrom(bad, { outDir, skipAllPresent: true }),
      hasCode('REPO_DUPLICATE_ARTIFACT'),
    );
    assert.deepEqual(fs.readdirSync(outDir).sort(), ['repo.zip', 'repo.zip.sha256.txt']);
    assert.ok(fs.readFileSync(r.output).equals(before.zip));
    assert.ok(fs.readFileSync(`${r.output}.sha256.txt`).equals(before.sum));
  });
});
