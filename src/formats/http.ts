/**
 * The HTTP rules Slipway's two servers share — the TUF repository server
 * (src/repo/serve.ts) and the image repository server
 * (src/server/imgapi-server.ts): one `Range` header against a file's size,
 * entity-tag lists, the host part of a URL and the one-line request log.
 * Pure (strings in, values out); the node:http plumbing they share is
 * src/core/http-server.ts.
 */

export type RangeResult =
  | { kind: 'whole' }
  /** Inclusive byte positions. */
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/**
 * An HTTP `Range` header (RFC 9110 §14) against a representation of `size`
 * bytes. Only one range is served: several, another unit, or bad syntax
 * (a last position before the first included) mean the whole thing (a server
 * may ignore Range); a range that starts past the end, or an empty suffix,
 * is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'whole' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (m === null) return { kind: 'whole' };
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return { kind: 'whole' };
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: 'partial', start, end };
}

/**
 * Whether a list of entity tags (`If-None-Match`, `If-Range`) names `etag`
 * or is `*`; a weak tag (`W/…`) matches its strong form. An `etag` written
 * the RFC's way, quoted, is compared as it is; a bare one (IMGAPI's `Etag:
 * <sha1>`) is compared with the tags' quotes removed, so `"<sha1>"` matches.
 */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const quoted = etag.startsWith('"');
  return header.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    const compared = quoted ? tag : tag.replace(/^"(.*)"$/, '$1');
    return compared === '*' || compared === etag;
  });
}

/** A listen address as it stands in a URL: an IPv6 literal in brackets. */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** What one request log line says; optional fields appear only when set. */
export interface RequestLogEntry {
  method: string | undefined;
  /** The request target as received. */
  path: string | undefined;
  /** 0 when no response was started. */
  status: number;
  /** The response did not finish (the client left, or the body failed mid-way). */
  incomplete?: boolean;
  route?: string;
  action?: string;
  /** The error code answered. */
  error?: string;
  /** Response body bytes sent. */
  bytes: number;
  /** Request body bytes received (shown when > 0). */
  received: number;
  ms: number;
  user?: string;
  id?: string;
}

/** One logfmt line per request: `http method=GET path="/x" status=200 … ms=3`. */
export function requestLogLine(e: RequestLogEntry): string {
  const fields = [
    `method=${e.method ?? '-'}`,
    `path=${JSON.stringify(e.path ?? '')}`,
    `status=${e.status}`,
    ...(e.incomplete === true ? ['incomplete=true'] : []),
    ...(e.route !== undefined ? [`route=${e.route}`] : []),
    ...(e.action !== undefined ? [`action=${JSON.stringify(e.action)}`] : []),
    ...(e.error !== undefined ? [`error=${e.error}`] : []),
    `bytes=${e.bytes}`,
    ...(e.received > 0 ? [`received=${e.received}`] : []),
    `ms=${e.ms}`,
    ...(e.user !== undefined ? [`user=${e.user}`] : []),
    ...(e.id !== undefined ? [`id=${e.id}`] : []),
  ];
  return `http ${fields.join(' ')}`;
}
