// Choosing the next token from logits: greedy, temperature, and nucleus (top-p) sampling, seeded.

import { Rng } from "../util/rng.ts";
import { checkOptionKeys, optionKeys } from "../util/option_keys.ts";

/** How to pick tokens. temperature 0 means greedy (argmax). */
export interface SamplingOptions {
  /** Softmax temperature ≥ 0 (default 0: greedy). */
  temperature?: number;
  /** Nucleus sampling threshold in (0, 1]; 1 disables it. */
  topP?: number;
  /** Seed of the sampler's RNG (default the current time). */
  seed?: number;
}

const SAMPLING_OPTION_KEYS = optionKeys<SamplingOptions>({ temperature: true, topP: true, seed: true });

/**
 * Index of the largest value (the first one on ties).
 *
 * @example
 * ```ts
 * import { argmax } from "./sampling.ts";
 * argmax(new Float32Array([0.1, 3, -2, 3])); // 1
 * ```
 */
export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/**
 * Picks token ids from logits according to the options; keeps its own seeded RNG, so the same seed
 * gives the same tokens.
 *
 * @example
 * ```ts
 * import { Sampler } from "./sampling.ts";
 * const logits = new Float32Array([2, 1, 0.5]);
 * new Sampler().sample(logits); // 0: greedy by default
 * const a = new Sampler({ temperature: 1, topP: 0.9, seed: 7 });
 * const b = new Sampler({ temperature: 1, topP: 0.9, seed: 7 });
 * a.sample(logits) === b.sample(logits); // true
 * ```
 */
export class Sampler {
  /** Softmax temperature (0: greedy). */
  readonly temperature: number;
  /** Nucleus threshold (1: off). */
  readonly topP: number;
  readonly #rng: Rng;

  /** Throws a RangeError for a negative or non-finite temperature or a top-p outside (0, 1]. */
  constructor(options: SamplingOptions = {}) {
    checkOptionKeys("Sampler", options, SAMPLING_OPTION_KEYS);
    this.temperature = options.temperature ?? 0;
    this.topP = options.topP ?? 1;
    if (!(this.temperature >= 0) || !Number.isFinite(this.temperature)) {
      throw new RangeError(`Temperature must be a finite number ≥ 0, found ${options.temperature}`);
    }
    if (!(this.topP > 0 && this.topP <= 1)) {
      throw new RangeError(`top-p must be in (0, 1], found ${options.topP}`);
    }
    this.#rng = new Rng(options.seed ?? Date.now());
  }

  /** The next token for these logits (V). */
  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const probs = new Float64Array(logits.length);
    let max = -Infinity;
    for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] / this.temperature);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp(logits[i] / this.temperature - max);
    for (let i = 0; i < probs.length; i++) probs[i] /= sum;
    const r = this.#rng.next();
    if (this.topP >= 1) {
      let acc = 0;
      for (let i = 0; i < probs.length; i++) if ((acc += probs[i]) > r) return i;
      return probs.length - 1;
    }
    // Nucleus: the smallest set of most likely tokens whose mass exceeds topP, renormalized.
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
    let mass = 0;
    let last = order.length - 1;
    for (let i = 0; i < order.length; i++) {
      mass += probs[order[i]];
      if (mass > this.topP) {
        last = i;
        break;
      }
    }
    let acc = 0;
    for (let i = 0; i <= last; i++) if ((acc += probs[order[i]]) > r * mass) return order[i];
    return order[last];
  }
}
