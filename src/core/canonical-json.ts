/**
 * OLPC canonical JSON, as TUF (securesystemslib) signs it: object keys
 * sorted by Unicode code point, no insignificant whitespace, strings with
 * only `"` and `\` escaped (every other character, control characters
 * included, is written as its raw UTF-8), integers only (no floats).
 */
import { SlipwayError } from './errors.js';

export type CanonicalValue =
  | null
  | boolean
  | number
  | string
  | readonly CanonicalValue[]
  | { readonly [key: string]: CanonicalValue | undefined };

function compareCodePoints(a: string, b: string): number {
  // JS compares UTF-16 code units; canonical JSON compares code points. They
  // differ only when a surrogate pair meets a BMP character above U+D7FF.
  const ai = a[Symbol.iterator]();
  const bi = b[Symbol.iterator]();
  for (;;) {
    const x = ai.next();
    const y = bi.next();
    if (x.done === true) return y.done === true ? 0 : -1;
    if (y.done === true) return 1;
    const cx = x.value.codePointAt(0) ?? 0;
    const cy = y.value.codePointAt(0) ?? 0;
    if (cx !== cy) return cx - cy;
  }
}

function encodeString(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function encode(value: unknown, path: string, parts: string[]): void {
  if (value === null) parts.push('null');
  else if (value === true) parts.push('true');
  else if (value === false) parts.push('false');
  else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new SlipwayError('INVALID_ARGUMENT', `canonical JSON allows only integers, found ${value}`, {
        where: path,
      });
    }
    parts.push(String(value));
  } else if (typeof value === 'string') parts.push(encodeString(value));
  else if (Array.isArray(value)) {
    parts.push('[');
    value.forEach((v, i) => {
      if (i > 0) parts.push(',');
      encode(v, `${path}[${i}]`, parts);
    });
    parts.push(']');
  } else if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort(compareCodePoints);
    parts.push('{');
    keys.forEach((k, i) => {
      if (i > 0) parts.push(',');
      parts.push(encodeString(k), ':');
      encode(obj[k], `${path}.${k}`, parts);
    });
    parts.push('}');
  } else {
    throw new SlipwayError('INVALID_ARGUMENT', `canonical JSON cannot encode a ${typeof value}`, {
      where: path,
    });
  }
}

export function canonicalJson(value: CanonicalValue): string {
  const parts: string[] = [];
  encode(value, '$', parts);
  return parts.join('');
}

export function canonicalJsonBytes(value: CanonicalValue): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
