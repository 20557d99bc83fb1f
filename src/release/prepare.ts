/**
 * `slipway release prepare`: the release-note fragments become this
 * release's section of rl-<MAJOR>.md, the docs summary gets the page the
 * first time, the fragments are removed, and all of it is one commit. Every
 * check (clean tree, front matter, authors, summary marker) runs before the
 * first write; a failure after it puts the tree back as it was.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../core/atomic-file.js';
import { SlipwayError, fromSystemError } from '../core/errors.js';
import { clockFrom } from '../repo/index.js';
import { expandTemplate } from './config.js';
import { insertSummaryEntry, isoDate, parseAuthors, renderReleaseNotes, type Fragment } from './notes.js';
import { openWorkspace, readRepoFile, requireCleanTree, type WorkspaceOptions } from './workspace.js';

export interface PrepareOptions extends WorkspaceOptions {
  dryRun?: boolean;
}

export interface PreparePlan {
  version: string;
  major: string;
  date: string;
  /** rl-<MAJOR>.md, relative to the repository. */
  notesFile: string;
  notesCreated: boolean;
  /** The docs summary and the line added to it (the first release of a MAJOR). */
  summary?: { file: string; entry: string };
  /** The fragments, relative to the repository; removed by the commit. */
  fragments: string[];
  commitMessage: string;
}

export interface PrepareResult {
  plan: PreparePlan;
  dryRun: boolean;
  /** The new rl-<MAJOR>.md. */
  notes: string;
  /** The commit made (not on a dry run). */
  commit?: string;
}

async function listFragments(dir: string, rel: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(path.join(dir, rel));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fromSystemError(err, 'cannot list the release-note fragments in', path.join(dir, rel));
  }
  const out: string[] = [];
  for (const n of names) {
    if (!n.endsWith('.md') || n.startsWith('.')) continue;
    if ((await fsp.lstat(path.join(dir, rel, n))).isFile()) out.push(`${rel}/${n}`);
  }
  // Byte order, not locale order: the same notes on every machine.
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function formatPreparePlan(plan: PreparePlan): string {
  const lines = [
    `prepare ${plan.version} (major ${plan.major}, ${plan.date})`,
    `  ${plan.notesCreated ? 'create' : 'update'} ${plan.notesFile}`,
  ];
  if (plan.summary !== undefined) lines.push(`  add to ${plan.summary.file}: ${plan.summary.entry.trim()}`);
  for (const f of plan.fragments) lines.push(`  remove ${f}`);
  if (plan.fragments.length === 0) lines.push('  (no release-note fragments: the section has headers only)');
  lines.push(`  commit "${plan.commitMessage}"`);
  return lines.join('\n');
}

export async function prepareRelease(options: PrepareOptions = {}): Promise<PrepareResult> {
  const ws = await openWorkspace(options);
  const { config, version: v, dir, git } = ws;
  await requireCleanTree(ws, 'prepare');
  const date = isoDate(clockFrom(options.env ?? process.env));
  const authorsText = await readRepoFile(dir, config.notes.authors, 'notes.authors', config.file);
  const authors = parseAuthors(authorsText, path.join(dir, config.notes.authors));
  const fragmentFiles = await listFragments(dir, config.notes.fragments);
  const fragments: Fragment[] = await Promise.all(
    fragmentFiles.map(async (f) => ({ file: f, text: await fsp.readFile(path.join(dir, f), 'utf8') })),
  );
  const notesFile = `${config.notes.outputDir}/rl-${v.major}.md`;
  const notesPath = path.join(dir, notesFile);
  const existing = fs.existsSync(notesPath) ? await fsp.readFile(notesPath, 'utf8') : undefined;
  const notes = renderReleaseNotes({
    product: config.product.displayName,
    version: v,
    date,
    fragments,
    authors,
    links: config.notes.links,
    ...(existing !== undefined ? { existing } : {}),
    notesFile,
  });
  let summary: { file: string; entry: string; text: string } | undefined;
  const sc = config.notes.summary;
  if (existing === undefined && sc !== undefined) {
    const before = await readRepoFile(dir, sc.file, 'notes.summary', config.file);
    const entry = expandTemplate(sc.entry, { major: v.major, version: v.version, name: v.name, date });
    const text = insertSummaryEntry(before, sc.marker, entry, path.join(dir, sc.file));
    if (text !== before) summary = { file: sc.file, entry, text };
  }
  const plan: PreparePlan = {
    version: v.version,
    major: v.major,
    date,
    notesFile,
    notesCreated: existing === undefined,
    ...(summary !== undefined ? { summary: { file: summary.file, entry: summary.entry } } : {}),
    fragments: fragmentFiles,
    commitMessage: `release notes: ${v.version}`,
  };
  if (options.dryRun === true) return { plan, dryRun: true, notes };

  try {
    await fsp.mkdir(path.dirname(notesPath), { recursive: true });
    await writeFileAtomic(notesPath, notes);
    if (summary !== undefined) await writeFileAtomic(path.join(dir, summary.file), summary.text);
    if (fragmentFiles.length > 0) await git.run(['rm', '--quiet', '--', ...fragmentFiles]);
    await git.run(['add', '--', notesFile, ...(summary !== undefined ? [summary.file] : [])]);
    await git.run(['commit', '--quiet', '-m', plan.commitMessage]);
  } catch (err) {
    // The tree was clean before: HEAD holds everything; a new notes page is the one file HEAD lacks.
    await git.tryRun(['reset', '--quiet', '--hard', 'HEAD']);
    if (existing === undefined) await fsp.rm(notesPath, { force: true });
    throw err instanceof SlipwayError
      ? err
      : new SlipwayError('IO', `release prepare: ${(err as Error).message}`, { cause: err });
  }
  return { plan, dryRun: false, notes, commit: await git.head() };
}
