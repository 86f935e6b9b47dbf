#!/usr/bin/env node
// The `rabit` command of the npm package (`npx rabit generate ...`): runs cli.ts's main on this process's
// arguments. Deno runs cli.ts itself; Node before 24 has no import.meta.main, hence this file.

import { main } from "../../cli.ts";
import { args, exit } from "../util/process.ts";

exit(await main(args()));
