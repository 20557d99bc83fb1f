/**
 * The main job on embedded defaults, for now: build an example tree
 * (`baseline/` + `layers/*`) into layer archives, verify them, and install
 * them into a scratch root. Later issues grow this into the full release.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SlipwayError } from '../core/errors.js';
import { silentReporter, type Reporter } from '../core/events.js';
import {
  installLayers,
  packDirectory,
  verifyArchive,
  type PackResult,
  type InstallResult,
} from '../layer/index.js';

export interface DemoResult {
  out: string;
  archives: PackResult[];
  root: string;
  install: InstallResult;
}

export async function runDemo(
  exampleDir: string,
  outDir: string,
  reporter: Reporter = silentReporter,
): Promise<DemoResult> {
  const baselineDir = path.join(exampleDir, 'baseline');
  const layersDir = path.join(exampleDir, 'layers');
  if (!fs.existsSync(baselineDir) || !fs.existsSync(layersDir)) {
    throw new SlipwayError('NOT_FOUND', `an example needs 'baseline/' and 'layers/' directories`, {
      where: exampleDir,
    });
  }
  const layerNames = fs
    .readdirSync(layersDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const archivesDir = path.join(outDir, 'archives');
  fs.mkdirSync(archivesDir, { recursive: true });

  const baseline = await packDirectory(baselineDir, path.join(archivesDir, 'baseline.tar.gz'), {
    type: 'baseline',
    pkg: 'baseline',
    reporter,
  });
  const layers = await Promise.all(
    layerNames.map((name) =>
      packDirectory(path.join(layersDir, name), path.join(archivesDir, `${name}.tar.gz`), {
        pkg: name,
        reporter,
      }),
    ),
  );
  for (const a of [baseline, ...layers]) {
    const report = await verifyArchive(a.output);
    const first = report.problems[0];
    if (first !== undefined)
      throw new SlipwayError(first.code, first.message, { where: first.where ?? a.output });
  }
  // A fresh scratch root each run: it is our own output directory.
  const root = path.join(outDir, 'root');
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  const install = await installLayers(
    root,
    layers.map((l) => l.output),
    { baseline: baseline.output, reporter },
  );
  return { out: outDir, archives: [baseline, ...layers], root, install };
}
