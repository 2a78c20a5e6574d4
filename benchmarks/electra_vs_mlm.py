"""ELECTRA's central claim on real data: at equal pretraining FLOPs, replaced-token detection
beats masked language modelling downstream, and both beat random initialisation.

Pretrains the same small discriminator twice on `../shared/data/en_corpus` (or the Chinese
text of `../shared/data/zh` with --language=zh): once with the ELECTRA objective (generator +
discriminator) and once as a BERT-style masked LM at the discriminator's size, given the same
training FLOPs (the MLM run gets more steps, since it has no generator; both FLOP counts are
printed). Then fine-tunes each, and a randomly initialised encoder, on SST-2, CoLA, RTE and
STS-B (`../shared/data/glue`; EPRSTMT and TNEWS for zh) with three seeds, and prints one table
(median per task, then the average) and ONE JSON line.

    python benchmarks/electra_vs_mlm.py                 # ~75 min on 2 CPU cores
    python benchmarks/electra_vs_mlm.py --language=zh
    python benchmarks/electra_vs_mlm.py --scale=8       # longer pretraining (a GPU)

Every stage is skipped when its output exists in --output_dir, so a rerun continues.
"""

import json
import os
import statistics
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_enum("language", "en", ["en", "zh"], "English GLUE or Chinese FewCLUE.")
flags.DEFINE_float("scale", 1.0, "Multiplies pretraining steps and corpus size.")
flags.DEFINE_string("data_root", os.path.join(os.path.dirname(REPO), "shared", "data"),
                    "Where en_corpus/, glue/ and zh/ are.")
flags.DEFINE_string("output_dir", "/tmp/electra_vs_mlm", "Working directory (resumable).")
flags.DEFINE_list("seeds", ["1", "2", "3"], "Fine-tuning seeds.")
flags.DEFINE_integer("electra_steps", 2000, "ELECTRA pretraining steps at --scale=1.")
flags.DEFINE_integer("max_train_examples", 2000, "Fine-tuning examples per task (fixed "
                     "subset), times --scale.")
flags.DEFINE_integer("finetune_seq_length", 64, "Fine-tuning sequence length.")
flags.DEFINE_list("inits", ["electra", "mlm", "none"], "Which starts to fine-tune.")
flags.DEFINE_multi_string("override", [], "Pretraining config overrides (section.key=value), "
                          "e.g. objective.temperature=2.0.")

# A small discriminator that pretrains in minutes on a CPU; the generator is 1/4 of its
# width, as in ELECTRA-Small.
MODEL = ["model.embedding_size=128", "model.hidden_size=128", "model.num_layers=4",
         "model.num_heads=2", "model.intermediate_size=512", "generator.hidden_fraction=0.25",
         "data.max_seq_length=128", "training.batch_size=32", "optimizer.learning_rate=5e-4",
         "training.steps_per_loop=50", "training.log_every=250",
         "training.checkpoint_every=1000", "runtime.peak_tflops=0.2"]

TASKS = {
    "en": [("sst2", "glue/SST-2", {}), ("cola", "glue/CoLA", {}), ("rte", "glue/RTE", {}),
           ("stsb", "glue/STS-B", {})],
    "zh": [("classification", "zh/fewclue/eprstmt",
            dict(train_file="train_few_all.json", dev_file="test_public.json",
                 text_column="sentence", label_column="label")),
           ("classification", "zh/fewclue/tnews",
            dict(train_file="train_few_all.json", dev_file="test_public.json",
                 text_column="sentence", label_column="label"))],
}


class BenchmarkError(ValueError):
    """Missing data or bad flags (one line)."""


def _corpus_files(root):
    if FLAGS.language == "en":
        folder = os.path.join(root, "en_corpus")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
        # 1 of the 4 book files per unit of scale (~16 MB, ~3M words), at least one.
        count = max(1, min(len(names), int(round(FLAGS.scale))))
        return [os.path.join(folder, n) for n in names[:count]]
    return [os.path.join(root, "zh", n) for n in ("cmrc2018_wiki_contexts.txt",
                                                    "fewclue_unlabeled_sentences.txt")]


def build_data(out):
    """vocab.txt and TFRecords (last 2% of documents held out is not needed: fine-tuning is
    the evaluation)."""
    from electra_tf.data.pretraining_builder import build_pretraining_data
    from electra_tf.text import vocab_learning

    vocab = os.path.join(out, "vocab.txt")
    files = _corpus_files(FLAGS.data_root)
    if not os.path.exists(vocab):
        vocab_learning.build_vocab_file(vocab, 8192, inputs=files, max_lines=200_000)
    data = os.path.join(out, "data")
    if not os.path.exists(os.path.join(data, "dataset.json")):
        # One paragraph per line: a blank line ends a book (en) / nothing (zh).
        build_pretraining_data(files, vocab, data, max_seq_length=128, num_shards=8,
                               num_workers=2, blank_lines_separate_docs=True)
    return vocab, data


def pretrain(out, vocab, data, objective, steps):
    from electra_tf import config as config_lib
    from electra_tf.training import trainer

    model_dir = os.path.join(out, objective)
    cfg = config_lib.load_config(
        os.path.join(REPO, "configs", "electra_small.yaml"),
        MODEL + [f"objective.kind={objective}", f"training.train_steps={steps}",
                 f"optimizer.warmup_steps={max(1, steps // 10)}"] + list(FLAGS.override))
    start = time.time()
    result = trainer.train(cfg, train_data=data, model_dir=model_dir, vocab=vocab,
                           log_fn=lambda line: print(f"[{objective}] {line}", flush=True))
    import keras
    keras.backend.clear_session()
    return model_dir, time.time() - start, result


def finetune(out, vocab, init_name, init_dir, task, folder, reader):
    from electra_tf.training.finetuning import FinetuneOptions, run_finetuning

    run_dir = os.path.join(out, "finetune", f"{os.path.basename(folder)}-{init_name}")
    results_path = os.path.join(run_dir, "results.json")
    if os.path.exists(results_path):
        with open(results_path) as f:
            return json.load(f)
    options = FinetuneOptions(
        task=task, data_dir=os.path.join(FLAGS.data_root, folder), output_dir=run_dir,
        init=init_dir or "none", vocab=None if init_dir else vocab,
        config=os.path.join(REPO, "configs", "electra_small.yaml"),
        overrides=[o for o in MODEL if o.startswith(("model.", "generator."))],
        seeds=[int(s) for s in FLAGS.seeds], max_seq_length=FLAGS.finetune_seq_length,
        max_train_examples=int(FLAGS.max_train_examples * FLAGS.scale),
        show_progress=False, **reader)
    start = time.time()
    results = run_finetuning(options, log=lambda line: print(f"  [{init_name}] {line}",
                                                             flush=True))
    import keras
    keras.backend.clear_session()
    print(f"  {folder} from {init_name}: {results['median']} ({time.time() - start:.0f} s)",
          flush=True)
    return results


def main(argv):
    del argv
    from electra_tf import config as config_lib
    from electra_tf.training import flops

    for need in ("en_corpus" if FLAGS.language == "en" else "zh",
                 "glue" if FLAGS.language == "en" else "zh/fewclue"):
        if not os.path.isdir(os.path.join(FLAGS.data_root, need)):
            raise BenchmarkError(f"{os.path.join(FLAGS.data_root, need)} is missing; pass "
                                 "--data_root=<the shared data folder>")
    out = os.path.join(FLAGS.output_dir, FLAGS.language)
    os.makedirs(out, exist_ok=True)
    started = time.time()
    vocab, data = build_data(out)
    base = os.path.join(REPO, "configs", "electra_small.yaml")
    per_seq = {kind: flops.model_flops_per_sequence(config_lib.load_config(
        base, MODEL + list(FLAGS.override) + [f"objective.kind={kind}"]))
        for kind in ("electra", "mlm")}
    electra_steps = max(10, int(FLAGS.electra_steps * FLAGS.scale))
    mlm_steps = int(round(electra_steps * per_seq["electra"] / per_seq["mlm"]))
    batch = 32
    train_flops = {"electra": electra_steps * batch * per_seq["electra"],
                   "mlm": mlm_steps * batch * per_seq["mlm"]}
    print(f"pretraining FLOPs: electra {train_flops['electra']:.3e} ({electra_steps} steps), "
          f"mlm {train_flops['mlm']:.3e} ({mlm_steps} steps)", flush=True)
    inits = {"none": None}
    pretrain_seconds = {}
    for objective, steps in (("electra", electra_steps), ("mlm", mlm_steps)):
        if objective in FLAGS.inits:
            inits[objective], pretrain_seconds[objective], _ = pretrain(
                out, vocab, data, objective, steps)
    table = {}
    for task, folder, reader in TASKS[FLAGS.language]:
        name = os.path.basename(folder)
        for init_name in FLAGS.inits:
            results = finetune(out, vocab, init_name, inits.get(init_name), task, folder,
                               reader)
            table.setdefault(name, {})[init_name] = results["median"][results["primary_metric"]]
    averages = {i: statistics.mean(table[t][i] for t in table) for i in FLAGS.inits}
    print("\nmedian over seeds of each task's main metric (accuracy; CoLA mcc; STS-B spearman)")
    print("task".ljust(12) + "".join(i.rjust(10) for i in FLAGS.inits))
    for name, row in table.items():
        print(name.ljust(12) + "".join(f"{100 * row[i]:10.1f}" for i in FLAGS.inits))
    print("average".ljust(12) + "".join(f"{100 * averages[i]:10.1f}" for i in FLAGS.inits))
    print(json.dumps({"benchmark": "electra_vs_mlm", "language": FLAGS.language,
                      "scale": FLAGS.scale, "pretrain_flops": train_flops,
                      "pretrain_steps": {"electra": electra_steps, "mlm": mlm_steps},
                      "pretrain_seconds": pretrain_seconds, "table": table,
                      "average": averages, "seconds": round(time.time() - started)}))


def _entry():
    try:
        app.run(main)
    except BenchmarkError as e:
        print(f"electra_vs_mlm: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _entry()
