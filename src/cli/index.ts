/**
 * The `finetune` command: the same services as the desktop app, no Electron.
 * Global options come first or anywhere: --home DIR, --models-mirror DIR|URL (repeatable).
 */
import { boot, appVersion, type Booted } from '../main/boot';
import { AppError } from '../shared/errors';
import { COMMANDS, usage } from './commands';
import { trace } from '../main/services/trace';

export interface GlobalOptions {
  home?: string;
  mirrors: string[];
  rest: string[];
  help: boolean;
  version: boolean;
}

/** Pull the global options out of argv, leaving the command and its own options. */
export function splitGlobalOptions(argv: string[]): GlobalOptions {
  const out: GlobalOptions = { mirrors: [], rest: [], help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new AppError('bad_arguments', `${flag} needs a value.`);
      return v;
    };
    if (flag === '--home') out.home = value();
    else if (flag === '--models-mirror') out.mirrors.push(value());
    else if ((flag === '--help' || flag === '-h') && out.rest.length === 0) out.help = true;
    else if ((flag === '--version' || flag === '-V') && out.rest.length === 0) out.version = true;
    else out.rest.push(a);
  }
  return out;
}

/** Run the CLI; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let booted: Booted | null = null;
  try {
    const g = splitGlobalOptions(argv);
    if (g.version) {
      console.log(appVersion());
      return 0;
    }
    const [name, ...args] = g.rest;
    if (g.help || !name || name === 'help') {
      console.log(usage(args[0] ?? (name === 'help' ? undefined : name)));
      return 0;
    }
    const command = COMMANDS[name];
    if (!command) {
      console.error(`Unknown command "${name}". Expected one of: ${Object.keys(COMMANDS).join(', ')}. Run \`finetune --help\`.`);
      return 2;
    }
    if (args.includes('--help') || args.includes('-h')) {
      console.log(usage(name));
      return 0;
    }
    trace(`cli: ${name}`);
    booted = await boot({ home: g.home, mirrors: g.mirrors });
    trace('booted');
    return await command.run(args, booted);
  } catch (err) {
    if (err instanceof AppError) console.error(`error: ${err.message}`);
    else console.error(`error: ${(err as Error)?.stack ?? String(err)}`);
    return 1;
  } finally {
    await booted?.close();
  }
}
