// A llama2.c vocabulary written as the Hugging Face tokenizer.json that encodes every text to the same ids:
// Llama 2's layout (SentencePiece BPE with byte fallback as transformers' LlamaConverter writes it), its
// merges derived from the scores the way llama2.c merges (highest-scoring merged token first, leftmost on
// ties). Used to export llama2.c models as Hugging Face checkpoints, and in tests.

import { BOS, EOS, type Llama2cTokenizer } from "./tokenizer.ts";

/** The pieces of ids 0, 1, 2 in a Llama vocabulary. */
const SPECIAL = ["<unk>", "<s>", "</s>"];

/**
 * tokenizer.json text for a llama2.c tokenizer: ids, pieces (" " as "▁") and merges ordered by the
 * merged piece's score. Throws a RangeError when a piece is not valid UTF-8 or two ids share a piece
 * (a tokenizer.json vocabulary maps each string to one id).
 *
 * @example
 * ```ts
 * import { tokenizerJsonFromLlama2c } from "./hf_tokenizer.ts";
 * import { Llama2cTokenizer } from "./tokenizer.ts";
 * const tok = await Llama2cTokenizer.load("../shared/data/tok512.bin", 512);
 * JSON.parse(tokenizerJsonFromLlama2c(tok)).model.type; // "BPE"
 * ```
 */
export function tokenizerJsonFromLlama2c(tok: Llama2cTokenizer): string {
  const dec = new TextDecoder("utf-8", { fatal: true });
  const pieces = tok.pieces.map((p, id) => {
    if (id <= EOS) return SPECIAL[id];
    try {
      return dec.decode(p).replaceAll(" ", "\u2581");
    } catch {
      throw new RangeError(`tokenizerJsonFromLlama2c: token ${id} is not valid UTF-8`);
    }
  });
  const vocab: Record<string, number> = {};
  for (const [id, piece] of pieces.entries()) {
    if (Object.hasOwn(vocab, piece)) {
      throw new RangeError(
        `tokenizerJsonFromLlama2c: tokens ${vocab[piece]} and ${id} are both ${JSON.stringify(piece)}`,
      );
    }
    Object.defineProperty(vocab, piece, { value: id, enumerable: true, writable: true, configurable: true });
  }
  // Every split of every piece into two pieces is a merge, ranked by the merged piece's score.
  const merges: { left: string; right: string; score: number; id: number }[] = [];
  for (const [id, piece] of pieces.entries()) {
    if (id <= EOS) continue;
    const cps = Array.from(piece);
    for (let i = 1; i < cps.length; i++) {
      const left = cps.slice(0, i).join(""), right = cps.slice(i).join("");
      if (Object.hasOwn(vocab, left) && Object.hasOwn(vocab, right)) {
        merges.push({ left, right, score: tok.scores[id], id });
      }
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id);
  const special = (id: number) => ({
    id,
    content: SPECIAL[id],
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [0, BOS, EOS].map(special),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "\u2581" },
        { type: "Replace", pattern: { String: " " }, content: "\u2581" },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [BOS], tokens: ["<s>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [m.left, m.right]),
    },
  };
  return JSON.stringify(json);
}

/**
 * tokenizer_config.json text for a Llama vocabulary (what transformers' AutoTokenizer reads next to
 * tokenizer.json).
 *
 * @example
 * ```ts
 * import { llamaTokenizerConfigJson } from "./hf_tokenizer.ts";
 * JSON.parse(llamaTokenizerConfigJson(512)).bos_token; // "<s>"
 * ```
 */
export function llamaTokenizerConfigJson(maxLength: number): string {
  return JSON.stringify(
    {
      tokenizer_class: "LlamaTokenizerFast",
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
      add_bos_token: true,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      legacy: true,
      model_max_length: maxLength,
    },
    null,
    2,
  );
}
