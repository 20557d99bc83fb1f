/** Flag parsing on node:util's parseArgs, with usage errors as SlipwayError. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SlipwayError } from '../core/errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(
  argv: string[],
  options: Options,
  usage: string,
): { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values, positionals };
  } catch (err) {
    throw new SlipwayError('USAGE', `${(err as Error).message}\nusage: ${usage}`, { cause: err });
  }
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function int(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
    throw new SlipwayError(
      'USAGE',
      `${name} takes a whole number, got '${typeof v === 'string' ? v : JSON.stringify(v)}'`,
    );
  }
  return n;
}
