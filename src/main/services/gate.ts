/**
 * The one gate every transport goes through: the verb must exist, its arguments must
 * parse, and whatever happens the caller gets `{ ok, value } | { ok: false, error }`.
 * Transports (IPC, HTTP, CLI) add their own sender checks before calling this.
 */
import { verbs, type Api, type Result, type VerbName } from '../../shared/contract';
import { toApiError } from '../../shared/errors';

export function isVerb(name: unknown): name is VerbName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(verbs, name);
}

/** Validate `rawArgs` for `verb` and call the service. Never throws. */
export async function invokeVerb(api: Api, verb: unknown, rawArgs: unknown): Promise<Result<unknown>> {
  if (!isVerb(verb)) {
    return {
      ok: false,
      error: { code: 'unknown_verb', message: `Unknown verb ${JSON.stringify(verb)}. Expected one of: ${Object.keys(verbs).join(', ')}.` },
    };
  }
  const parsed = verbs[verb].args.safeParse(rawArgs ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`)
      .join('; ');
    return { ok: false, error: { code: 'bad_arguments', message: `Invalid arguments for ${verb}: ${issues}.` } };
  }
  try {
    const fn = api[verb] as (a: unknown) => Promise<unknown>;
    const value = await fn(parsed.data);
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: toApiError(err) };
  }
}
