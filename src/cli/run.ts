/** Entry point when the CLI module is executed directly (node --import tsx src/cli/run.ts). */
import { main } from './index';

process.exitCode = await main(process.argv.slice(2));
