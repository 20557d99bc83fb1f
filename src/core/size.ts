import { SlipwayError } from './errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** `1MiB` → 1048576, `1MB` → 1000000, `512` → 512, `1.5GiB` → 1610612736. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m?.[2]?.toLowerCase() ?? '';
  const factor = UNITS[unit];
  if (m?.[1] === undefined || factor === undefined) {
    throw new SlipwayError(
      'INVALID_ARGUMENT',
      `${what}: cannot read '${text}' as a size (e.g. 512, 64KiB, 1MiB, 2GB)`,
    );
  }
  const value = Math.round(Number(m[1]) * factor);
  if (!Number.isSafeInteger(value))
    throw new SlipwayError('INVALID_ARGUMENT', `${what}: '${text}' is too large`);
  return value;
}

/** 1536 → `1.5 KiB`; whole bytes below 1 KiB. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  const text = digits === 0 ? v.toFixed(0) : v.toFixed(digits).replace(/0+$/, '').replace(/\.$/, '');
  return `${text} ${units[i] ?? ''}`;
}
