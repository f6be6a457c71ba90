/**
 * Request checks for `serve`: Host and Origin must name this server (a DNS-rebinding page
 * has a foreign Host; a cross-site page has a foreign Origin), and the token must come
 * with the request as ?token=, a Bearer header, or the cookie set on first visit.
 */
import type http from 'node:http';
import crypto from 'node:crypto';

export interface GuardConfig {
  token: string;
  host: string;
  port: number;
}

export type Verdict = { ok: true; setCookie?: string } | { ok: false; status: 401 | 403; message: string };

export const COOKIE = 'finetune_token';

function allowedHosts(cfg: GuardConfig): Set<string> {
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  if (cfg.host !== '0.0.0.0' && cfg.host !== '::') names.add(cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host);
  return new Set([...names].map((n) => `${n}:${cfg.port}`));
}

function sameToken(a: string | undefined, b: string): boolean {
  if (!a) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function cookieToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/**
 * Decide whether a request may proceed. With a bind address other than loopback the Host
 * may be anything the user typed, so only the token protects it (serve warns about that).
 */
export function checkRequest(req: http.IncomingMessage, cfg: GuardConfig): Verdict {
  const loopbackOnly = ['127.0.0.1', 'localhost', '::1'].includes(cfg.host);
  const hosts = allowedHosts(cfg);
  const host = (req.headers.host ?? '').toLowerCase();
  if (loopbackOnly && !hosts.has(host)) {
    return { ok: false, status: 403, message: `Refused: Host "${host}" is not this server. Open ${[...hosts][0]} directly.` };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let originHost = '';
    try {
      originHost = new URL(origin).host.toLowerCase();
    } catch {
      originHost = '';
    }
    const okOrigin = loopbackOnly ? hosts.has(originHost) : originHost === host;
    if (!okOrigin) return { ok: false, status: 403, message: `Refused: Origin "${origin}" is not this server.` };
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  const queryToken = url.searchParams.get('token') ?? undefined;
  const auth = req.headers.authorization;
  const bearer = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
  if (sameToken(queryToken, cfg.token)) {
    return { ok: true, setCookie: `${COOKIE}=${encodeURIComponent(cfg.token)}; HttpOnly; SameSite=Strict; Path=/` };
  }
  if (sameToken(bearer, cfg.token) || sameToken(cookieToken(req.headers.cookie), cfg.token)) return { ok: true };
  return { ok: false, status: 401, message: 'Missing or wrong token. Open the URL printed by `finetune serve` (it contains ?token=...).' };
}
