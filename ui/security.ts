// Who may use the app. Bound to loopback, anyone on this machine (as the CLI is); bound elsewhere,
// only a request carrying PIPELINE_UI_TOKEN (an `Authorization: Bearer` header, or the cookie set
// when the page was opened with `?token=`): every request, the event stream included. Actions are
// POSTs that carry the page's CSRF token in a header a cross-site form cannot set, from the app's
// own origin.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export const TOKEN_COOKIE = 'pipeline_ui_token';
export const CSRF_HEADER = 'x-csrf-token';

/** Whether `host` (an address or name to bind) is this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

function sameSecret(given: string | undefined, secret: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

export class Guard {
  readonly csrf = randomBytes(24).toString('hex');

  constructor(
    /** Required on every request when set. */
    private readonly token: string | undefined,
  ) {}

  /** The token a request carries, if it is the right one ('query': in the URL, to be moved to a cookie). */
  authorize(req: IncomingMessage, url: URL): 'ok' | 'query' | 'refused' {
    if (this.token === undefined) return 'ok';
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (sameSecret(bearer, this.token) || sameSecret(cookie(req, TOKEN_COOKIE), this.token)) return 'ok';
    if (sameSecret(url.searchParams.get('token') ?? undefined, this.token)) return 'query';
    return 'refused';
  }

  tokenCookie(): string {
    return `${TOKEN_COOKIE}=${encodeURIComponent(this.token ?? '')}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** A POST from the app's page: its CSRF header, and its Origin (when sent) is this server. */
  actionAllowed(req: IncomingMessage): boolean {
    const header = req.headers[CSRF_HEADER];
    if (!sameSecret(typeof header === 'string' ? header : undefined, this.csrf)) return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }
}
