// End-to-end decode speed of several CPU sessions of one real model (e.g. stories260K on the wasm backend as
// fp32, fp16-storage and packed k = 2, and on the TypeScript reference), timed interleaved: each round runs a
// few decode steps of every session in turn, so a busy machine slows all of them alike; medians of rounds.
// Used by `rabit bench --backend wasm` and bench/wasm_decode.bench.ts.

import type { InferenceSession } from "../backend/backend.ts";
import { argmax } from "../eval/sampling.ts";

/** Options of {@link measureSessionDecode}. */
export interface MeasureSessionDecodeOptions {
  /** Prompt tokens prefilled before timing (default 128, as `rabit bench` on WebGPU). */
  context?: number;
  /** Timed rounds; the median counts (default 7). */
  rounds?: number;
  /** Decode steps per session per round (default 16). */
  stepsPerRound?: number;
}

/**
 * Tokens per second of greedy decoding for each named session after a `context`-token prefill (token 1
 * repeated: values do not change the cost). Positions wrap back to the context when the model's seqLen
 * would be passed, so any number of rounds fits.
 */
export async function measureSessionDecode(
  sessions: Record<string, InferenceSession>,
  options: MeasureSessionDecodeOptions = {},
): Promise<Record<string, number>> {
  const context = options.context ?? 128;
  const rounds = options.rounds ?? 7;
  const per = options.stepsPerRound ?? 16;
  const names = Object.keys(sessions);
  const state = new Map<string, { pos: number; token: number; ms: number[] }>();
  for (const name of names) {
    const s = sessions[name];
    if (context + per >= s.config.seqLen) {
      throw new RangeError(
        `measureSessionDecode: context ${context} + ${per} steps exceed seqLen ${s.config.seqLen}`,
      );
    }
    const logits = await s.run(new Array(context).fill(1), 0, { lastOnly: true });
    state.set(name, { pos: context, token: argmax(logits), ms: [] });
  }
  for (let r = 0; r < rounds + 1; r++) { // round 0 warms up
    for (const name of names) {
      const st = state.get(name)!, s = sessions[name];
      if (st.pos + per >= s.config.seqLen) st.pos = context;
      const t0 = performance.now();
      for (let i = 0; i < per; i++) st.token = argmax(await s.run([st.token], st.pos++, { lastOnly: true }));
      if (r > 0) st.ms.push((performance.now() - t0) / per);
    }
  }
  const out: Record<string, number> = {};
  for (const name of names) {
    const ms = [...state.get(name)!.ms].sort((a, b) => a - b);
    out[name] = 1000 / ms[ms.length >> 1];
  }
  return out;
}
