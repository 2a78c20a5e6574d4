"""Text: WordPiece vocabularies, the in-graph tokenizer and corpus reading.

Names are re-exported lazily so that `electra_tf.text.corpus` (pure Python) and its siblings
`documents` and `embedded_corpus` can be imported without loading TensorFlow.
"""

from electra_tf._lazy import lazy_exports

_EXPORTS = {
    "SPECIAL_TOKENS": ".vocab",
    "VocabError": ".vocab",
    "learn_vocab": ".vocab_learning",
    "build_vocab_file": ".vocab_learning",
    "load_vocab": ".vocab",
    "write_vocab": ".vocab",
    "vocab_hash": ".vocab",
    "ElectraTokenizer": ".tokenizer",
    "CorpusError": ".corpus",
    "expand_inputs": ".corpus",
    "iter_documents": ".documents",
    "embedded_corpus_files": ".embedded_corpus",
    "embedded_corpus_stats": ".embedded_corpus",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
