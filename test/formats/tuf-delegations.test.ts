/** Delegated targets: search order, path patterns, hash prefixes, terminating roles. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isSlipwayError, type ErrorCode } from '../../src/core/errors.js';
import { newTargets } from '../../src/formats/tuf/build.js';
import { matchesPathPattern, resolveTarget, type TrustedMetadata } from '../../src/formats/tuf/client.js';
import { localSigner, type Signer, type TufKey } from '../../src/formats/tuf/keys.js';
import {
  formatExpires,
  serializeMetadata,
  type DelegatedRole,
  type TargetsMeta,
} from '../../src/formats/tuf/metadata.js';
import { signMetadata } from '../../src/formats/tuf/sign.js';
import { fixtureKey, makeFixture, type TufFixture } from '../helpers/tuf-fixture.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const code = (c: ErrorCode, where?: string) => (e: unknown) => {
  assert.ok(isSlipwayError(e), String(e));
  assert.equal(e.code, c, e.message);
  if (where !== undefined) assert.equal(e.where, where);
  return true;
};

interface RoleSpec {
  name: string;
  delegator?: string;
  paths?: string[];
  prefixes?: string[];
  terminating?: boolean;
  targets?: Record<string, string>;
  /** Sign with this instead of the role's own key. */
  signer?: Signer;
  mutate?: (t: TargetsMeta) => void;
}

const signerOf = (name: string): Signer => localSigner(fixtureKey(`delegated-${name}`));

/** Adds delegated roles (in order) to a fixture: `1.<name>.json` files, snapshot entries, delegations. */
async function delegate(fx: TufFixture, specs: RoleSpec[]): Promise<void> {
  const delegationsOf = (delegator: string) => {
    const roles: DelegatedRole[] = [];
    const keys: Record<string, TufKey> = {};
    for (const s of specs.filter((x) => (x.delegator ?? 'targets') === delegator)) {
      const sg = signerOf(s.name);
      keys[sg.keyId] = sg.key;
      const role: DelegatedRole = {
        name: s.name,
        keyids: [sg.keyId],
        threshold: 1,
        terminating: s.terminating ?? false,
      };
      if (s.paths !== undefined) role.paths = s.paths;
      if (s.prefixes !== undefined) role.path_hash_prefixes = s.prefixes;
      roles.push(role);
    }
    return roles.length === 0 ? undefined : { keys, roles };
  };
  const entries: Record<string, { version: number; length: number; hashes: { sha256: string } }> = {};
  for (const s of specs) {
    const body = newTargets({
      version: 1,
      expires: fx.expires,
      targets: Object.fromEntries(
        Object.entries(s.targets ?? {}).map(([n, data]) => [
          n,
          { length: data.length, sha256: sha256(data) },
        ]),
      ),
    });
    const d = delegationsOf(s.name);
    if (d !== undefined) body.delegations = d;
    s.mutate?.(body);
    const bytes = serializeMetadata(await signMetadata(body, [s.signer ?? signerOf(s.name)]));
    fx.metadata.set(`1.${s.name}.json`, bytes);
    entries[`${s.name}.json`] = { version: 1, length: bytes.length, hashes: { sha256: sha256(bytes) } };
  }
  await fx.resign('snapshot', (snap) => Object.assign(snap.meta, entries));
  await fx.resign(
    'targets',
    (t) => {
      const d = delegationsOf('targets');
      if (d !== undefined) t.delegations = d;
    },
    { updateParents: true },
  );
}

const resolve = async (fx: TufFixture, name: string): Promise<{ tm: TrustedMetadata; length: number }> => {
  const tm = await fx.verify();
  const t = await resolveTarget(tm, fx.read, name);
  return { tm, length: t.length };
};

test('path patterns: * and ? stay within a segment; [] classes; never throws', () => {
  const yes: [string, string][] = [
    ['os/*', 'os/host.tar.gz'],
    ['*.tar.gz', 'x.tar.gz'],
    ['*', 'anything'],
    ['a?c', 'abc'],
    ['[ab]c', 'bc'],
    ['[!ab]c', 'xc'],
    ['a/*/c', 'a/b/c'],
  ];
  const no: [string, string][] = [
    ['os/*', 'os/a/b'],
    ['*', 'a/b'],
    ['a.b', 'axb'],
    ['[!ab]c', 'bc'],
    ['os/[z-a]', 'os/x'],
    ['a?c', 'a/c'],
  ];
  for (const [p, n] of yes) assert.equal(matchesPathPattern(p, n), true, `${p} ~ ${n}`);
  for (const [p, n] of no) assert.equal(matchesPathPattern(p, n), false, `${p} !~ ${n}`);
});

test('a delegated target is found after loading its role', async () => {
  const fx = await makeFixture({ now: NOW });
  await delegate(fx, [{ name: 'os-role', paths: ['os/*'], targets: { 'os/a.bin': 'aaa' } }]);
  const tm = await fx.verify();
  assert.deepEqual(tm.nextDelegation('os/a.bin'), { role: 'os-role', delegator: 'targets' });
  assert.equal(tm.delegatedTargetsFile('os-role'), '1.os-role.json');
  assert.throws(() => tm.findTarget('os/a.bin'), code('TUF_TARGET_UNKNOWN', 'os/a.bin'));
  assert.equal((await resolveTarget(tm, fx.read, 'os/a.bin')).length, 3);
  assert.equal(tm.targetFile('os/a.bin'), `os/${sha256('aaa')}.a.bin`);
  // Top-level targets still come first, and need no delegation.
  assert.equal(tm.nextDelegation('artifacts.json'), undefined);
  // * does not cross /: os/sub/b.bin is not delegated, so it is unknown.
  await assert.rejects(resolveTarget(tm, fx.read, 'os/sub/b.bin'), code('TUF_TARGET_UNKNOWN'));
});

test('path_hash_prefixes select by the sha256 of the target name', async () => {
  const name = 'bins/x.bin';
  const prefix = sha256(name).slice(0, 2);
  const other = prefix === '00' ? '01' : '00';
  const fx = await makeFixture({ now: NOW });
  await delegate(fx, [
    { name: 'miss', prefixes: [other], targets: { [name]: 'wrong' } },
    { name: 'hit', prefixes: [prefix], targets: { [name]: 'right!' } },
  ]);
  assert.equal((await resolve(fx, name)).length, 6);
});

test('preorder depth-first; a terminating role ends the search', async () => {
  // a (non-terminating) delegates to c; b comes after a. c is visited before b.
  let fx = await makeFixture({ now: NOW });
  await delegate(fx, [
    { name: 'a', paths: ['p/*'] },
    { name: 'b', paths: ['p/*'], targets: { 'p/t': 'from b' } },
    { name: 'c', delegator: 'a', paths: ['p/*'], targets: { 'p/t': 'from c, longer' } },
  ]);
  assert.equal((await resolve(fx, 'p/t')).length, 'from c, longer'.length);

  // a is terminating and lists nothing: b is never consulted.
  fx = await makeFixture({ now: NOW });
  await delegate(fx, [
    { name: 'a', paths: ['p/*'], terminating: true },
    { name: 'b', paths: ['p/*'], targets: { 'p/t': 'from b' } },
  ]);
  await assert.rejects(resolve(fx, 'p/t'), code('TUF_TARGET_UNKNOWN'));

  // A terminating role that does not match the path does not stop anything.
  fx = await makeFixture({ now: NOW });
  await delegate(fx, [
    { name: 'a', paths: ['q/*'], terminating: true },
    { name: 'b', paths: ['p/*'], targets: { 'p/t': 'from b' } },
  ]);
  assert.equal((await resolve(fx, 'p/t')).length, 6);
});

test('delegated metadata is checked like top-level targets', async () => {
  const cases: [string, Partial<RoleSpec>, ErrorCode][] = [
    ['wrong key', { signer: signerOf('intruder') }, 'TUF_THRESHOLD_NOT_MET'],
    ['version', { mutate: (t) => (t.version = 2) }, 'TUF_VERSION_MISMATCH'],
    [
      'expired',
      { mutate: (t) => (t.expires = formatExpires(new Date(NOW.getTime() - 1000))) },
      'TUF_EXPIRED',
    ],
    ['wrong type', { mutate: (t) => Object.assign(t, { _type: 'snapshot' }) }, 'TUF_WRONG_TYPE'],
  ];
  for (const [what, spec, c] of cases) {
    const fx = await makeFixture({ now: NOW });
    await delegate(fx, [{ name: 'r', paths: ['*'], targets: { t: 'x' }, ...spec }]);
    await assert.rejects(resolve(fx, 't'), code(c, '1.r.json'), what);
  }
  // Changed after the snapshot listed it.
  const fx = await makeFixture({ now: NOW });
  await delegate(fx, [{ name: 'r', paths: ['*'], targets: { t: 'x' } }]);
  const file = fx.metadata.get('1.r.json');
  assert.ok(file);
  fx.metadata.set('1.r.json', Buffer.concat([file, Buffer.from(' ')]));
  await assert.rejects(resolve(fx, 't'), code('TUF_LENGTH_MISMATCH', '1.r.json'));
  fx.metadata.set('1.r.json', Buffer.from(file.toString().replace('"t": {', '"u": {')));
  await assert.rejects(resolve(fx, 't'), code('TUF_HASH_MISMATCH', '1.r.json'));
});
