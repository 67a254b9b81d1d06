// REST calls to the gateway, and its one error shape:
//   {"error":{"code":REASON,"status":HTTP,"grpc_code":..,"message":..,"field":..}}

const GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
  'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const GRPC_HTTP = { 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
  11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401 };

/** An error the server (or the network) reported. status 0: no answer. */
export class ApiError extends Error {
  constructor({ code = 'UNKNOWN', status = 0, grpcCode = '', message = '', field = '', retryAfter = 0 } = {}) {
    super(message || code);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.grpcCode = grpcCode;
    this.field = field;
    this.retryAfter = retryAfter; // seconds, from Retry-After on a 429
  }
  /** No answer at all: offline, or the server is down. */
  get network() { return this.status === 0; }
  /** Worth trying again later with the same request. */
  get transient() { return this.status === 0 || this.status === 429 || this.status >= 500; }
}

export const networkError = () => new ApiError({
  code: 'NETWORK', status: 0, message: 'Cannot reach the server. Check your connection; Parley keeps trying.',
});

/** The ApiError for an error body (or anything else) with an HTTP status. */
export function errorFrom(body, httpStatus = 0) {
  const e = body && typeof body === 'object' ? body.error : null;
  if (e && typeof e === 'object') {
    if (typeof e.code === 'number') { // grpc-gateway's own shape inside a stream
      const name = GRPC_CODES[e.code] || 'UNKNOWN';
      return new ApiError({ code: name, status: httpStatus || GRPC_HTTP[e.code] || 500, grpcCode: name, message: e.message });
    }
    return new ApiError({
      code: e.code, status: e.status || httpStatus, grpcCode: e.grpc_code || e.grpcCode || '',
      message: e.message, field: e.field || '',
    });
  }
  return new ApiError({
    code: `HTTP_${httpStatus}`, status: httpStatus,
    message: httpStatus ? `The server answered ${httpStatus}.` : 'No answer from the server.',
  });
}

/** A message for people: the server's, with the field it names. */
export function describe(err) {
  if (!err) return '';
  if (!(err instanceof ApiError)) return err.message || String(err);
  let msg = err.message || err.code;
  if (err.status === 429) {
    msg = `Too many requests: ${msg}` + (err.retryAfter ? ` Try again in ${err.retryAfter} s.` : '');
  }
  return msg.charAt(0).toUpperCase() + msg.slice(1);
}

/**
 * Calls the gateway. Resolves to the parsed JSON body ({} when empty);
 * rejects with an ApiError (status 0 when there was no answer), or with the
 * AbortError of `signal`.
 */
export async function call(method, path, { token, body, signal, headers } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  const init = { method, headers: h, signal, cache: 'no-store' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res, text;
  try {
    res = await fetch(path, init);
    text = await res.text();
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw networkError();
  }
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { /* not JSON: a proxy's page */ }
  }
  if (!res.ok) {
    const err = errorFrom(data, res.status);
    err.retryAfter = Number(res.headers.get('Retry-After')) || 0;
    throw err;
  }
  return data ?? {};
}

export const enc = encodeURIComponent;

/** A uint64 from JSON (a string) as a number; 0 when absent. */
export const seqOf = (v) => Number(v || 0);
