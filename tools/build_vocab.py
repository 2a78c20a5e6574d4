"""Learns a WordPiece vocabulary (tensorflow-text's learner) and writes vocab.txt.

Usage:
  python tools/build_vocab.py --input='corpus/*.txt' --output=vocab.txt --vocab_size=30522
  python tools/build_vocab.py --output=vocab.txt --vocab_size=8000   # embedded corpus

Without --input it learns from the embedded corpus (Python standard-library docstrings and
comments, cached under --cache_dir). [PAD], [UNK], [CLS], [SEP], [MASK] get ids 0-4; the file
is filled to exactly --vocab_size with [unusedN] tokens when the learner stops short.

Exit status: 0 done; 2 bad input or output, with one line on stderr naming it (no match, a
binary or non-UTF-8 file, no text at all, an output that is a directory or not writable --
all found before learning starts -- or a full disk when writing, which leaves no vocab.txt);
130 interrupted (Ctrl-C). Temporaries that a killed run left beside the output are removed
at start.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from electra_tf import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Text files: a glob, or comma-separated globs (.gz ok). "
                    "Default: the embedded standard-library corpus.")
flags.DEFINE_string("output", None, "Where to write vocab.txt.")
flags.DEFINE_integer("vocab_size", 30522, "Tokens in the vocabulary, special tokens included.")
flags.DEFINE_bool("lower_case", True, "Uncased vocab (lower-case, strip accents); "
                  "--nolower_case for cased.")
flags.DEFINE_bool("blank_lines_separate_docs", True, "A blank line ends a document.")
flags.DEFINE_integer("max_lines", None, "Learn from at most this many lines (a sample bound "
                     "for large corpora; default: all).")
flags.DEFINE_integer("max_input_words", 200000, "Give the learner only this many most frequent "
                     "distinct words (bounds learning time).")
flags.DEFINE_integer("max_unique_chars", 1000, "Alphabet size: the most frequent characters "
                     "become single-character tokens; words with rarer ones map to [UNK].")
flags.DEFINE_string("cache_dir", None, "Cache of the embedded corpus (default: "
                    "$ELECTRA_TF_CACHE, else $XDG_CACHE_HOME/electra_tf, else "
                    "~/.cache/electra_tf).")


def main(argv):
    if len(argv) > 1:
        print(f"build_vocab: unexpected arguments {argv[1:]}: pass everything as --flags",
              file=sys.stderr)
        return 2
    if not FLAGS.output:
        print("build_vocab: --output is required: the path of the vocab.txt to write",
              file=sys.stderr)
        return 2
    if FLAGS.input is not None and not FLAGS.input.strip():
        # Usually an unset shell variable; the embedded corpus is for no --input at all.
        print("build_vocab: --input is empty; give text files (a glob or comma-separated "
              "globs), or leave --input out for the embedded corpus", file=sys.stderr)
        return 2
    from electra_tf.files import default_cache_dir
    from electra_tf.text import corpus, vocab_learning

    try:
        summary = vocab_learning.build_vocab_file(
            FLAGS.output, FLAGS.vocab_size, inputs=FLAGS.input, lower_case=FLAGS.lower_case,
            blank_lines_separate_docs=FLAGS.blank_lines_separate_docs,
            max_lines=FLAGS.max_lines, max_input_words=FLAGS.max_input_words,
            max_unique_chars=FLAGS.max_unique_chars,
            cache_dir=FLAGS.cache_dir or default_cache_dir())
    except (vocab_learning.VocabError, corpus.CorpusError) as e:
        print(f"build_vocab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"build_vocab: interrupted; nothing was written to {FLAGS.output}",
              file=sys.stderr)
        return 130
    print(f"learned {summary['learned']} tokens ({summary['tokens']} written, "
          f"{summary['tokens'] - summary['learned']} [unusedN] padding) from "
          f"{summary['files']} file(s) of {summary['corpus']} corpus "
          f"({summary.get('lines_used', 0)} lines of {summary.get('documents', 0)} documents) "
          f"in {summary['seconds']:.1f} s; wrote {summary['output']}")
    for key in ("invalid_utf8_lines", "empty_files", "empty_documents"):
        if summary.get(key):
            print(f"note: {summary[key]} {key.replace('_', ' ')}")
    return 0


if __name__ == "__main__":
    cli.run(main, "build_vocab")
