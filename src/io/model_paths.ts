// Where to find a model and its tokenizer when the user does not say: --model, then $RABIT_MODEL,
// then the stories260K checkpoint in ../shared/data; a tokenizer next to the model is found by itself.

import { cwd, env } from "../util/process.ts";
import { isFileSync as exists, notFoundError, pathModule } from "./fs.ts";

/** The default model locations tried in order when neither --model nor $RABIT_MODEL is given. */
export function defaultModelCandidates(): string[] {
  const fromCwd = pathModule().join(cwd(), "..", "shared", "data", "stories260K.bin");
  const fromModule = new URL("../../../shared/data/stories260K.bin", import.meta.url);
  const out = [fromCwd];
  if (fromModule.protocol === "file:") out.push(decodeURIComponent(fromModule.pathname));
  return out;
}

/** Resolves the model path from an explicit flag, the environment, or the defaults. */
export function resolveModelPath(explicit?: string): string {
  if (explicit) return explicit;
  const fromEnv = env("RABIT_MODEL");
  if (fromEnv) return fromEnv;
  const found = defaultModelCandidates().find(exists);
  if (found) return found;
  throw notFoundError(
    "No model given: pass --model FILE (a llama2.c .bin, a GGUF or a .rabit file) or set RABIT_MODEL. " +
      "stories260K is in the public tinyllamas release (see README).",
  );
}

/** A tokenizer file next to the model: tokenizer.bin, tok{vocab}.bin, or <model name>.tokenizer.bin. */
export function findTokenizerNear(modelPath: string, vocabSize: number): string | undefined {
  const { dirname, join } = pathModule();
  const dir = dirname(modelPath);
  const base = modelPath.replace(/\.[^./]+$/, "");
  const names = [join(dir, `tok${vocabSize}.bin`), join(dir, "tokenizer.bin"), `${base}.tokenizer.bin`];
  return names.find(exists);
}
