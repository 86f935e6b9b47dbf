// Opening a model for a CLI command: resolve the path, load it with its tokenizer, pick the backend.

import { choiceOption } from "./args.ts";
import { BACKEND_NAMES, type BackendName, type InferenceSession } from "../backend/backend.ts";
import { createSession } from "../backend/create.ts";
import { type OpenedModel, openModel } from "../io/load_model.ts";
import { resolveModelPath } from "../io/model_paths.ts";
import type { Tokenizer } from "../io/tokenizer.ts";

/** The one-line help of `--backend` for the commands that run a model (eval, generate, demo). */
export const BACKEND_HELP =
  "auto | webgpu | wasm | cpu (default auto: WebGPU on a hardware adapter, else wasm, else cpu)";

/** A session, the tokenizer, what was opened, and the --backend asked for (the session's may differ: auto). */
export interface CliSession {
  session: InferenceSession;
  tokenizer: Tokenizer;
  opened: OpenedModel;
  backend: BackendName;
}

/**
 * Opens --model/--tokenizer on --backend for a command that needs text in or out. `refuse` sees the opened
 * model before any session is created, so a command can turn down a model it cannot use (it throws).
 */
export async function openSession(
  values: Record<string, unknown>,
  refuse?: (opened: OpenedModel) => void,
): Promise<CliSession> {
  // Checked before the model loads, so a mistyped backend fails at once.
  const backend = choiceOption(values, "backend", BACKEND_NAMES, "auto");
  const path = resolveModelPath(values.model as string | undefined);
  const opened = await openModel(path, {
    tokenizer: values.tokenizer as string | undefined,
    requireTokenizer: true,
  });
  refuse?.(opened);
  const session = await createSession(opened.model, {
    backend,
    onNotice: (line) => console.error(line),
  });
  return { session, tokenizer: opened.tokenizer!, opened, backend };
}
