// `node --import ./test/helpers/module-trace.mjs …` installs module-trace-hook.mjs before the program loads.
import { register } from 'node:module';

register(new URL('./module-trace-hook.mjs', import.meta.url));
