"""Does the shipped TFLite model decide like the Keras model it came from, on a whole dev set?

Exports a fine-tuned classifier's model dir (e.g. an SST-2 run of `electra_tf.finetune`) to
TFLite with dynamic-range int8 weights, then classifies every dev sentence with both the
raw-text TFLite model (tokenizer in the graph, TF Text custom ops) and the Keras model, and
prints ONE JSON line: argmax agreement, each one's dev accuracy, file size and the reference
(the Keras model) side by side. Target: agreement >= 99%.

    python benchmarks/finetuned_tflite.py --model_dir=/tmp/electra_vs_mlm/en/finetune/SST-2-electra \
        --data_dir=../shared/data/glue/SST-2 --task=sst2
"""

import json
import os
import sys
import tempfile

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A fine-tuned classifier's model dir.")
flags.DEFINE_string("data_dir", None, "The task's data (its dev file is classified).")
flags.DEFINE_string("task", "sst2", "Task name, as given to electra_tf.finetune.")
flags.DEFINE_enum("quantize", "dynamic", ["none", "float16", "dynamic", "int8"],
                  "TFLite variant.")


def main(argv):
    del argv
    import numpy as np

    from electra_tf.data import task_features, tasks
    from electra_tf.export import tflite
    from electra_tf.export.pipeline import export_all
    from electra_tf.export.source import load_export_source

    if not FLAGS.model_dir or not FLAGS.data_dir:
        print("finetuned_tflite: --model_dir and --data_dir are required", file=sys.stderr)
        sys.exit(2)
    source = load_export_source(FLAGS.model_dir)
    out = tempfile.mkdtemp(prefix="finetuned_tflite_")
    export_all(source, out, formats="tflite", quantize=FLAGS.quantize, styles="text",
               strict=False, log=lambda line: None)
    path = os.path.join(out, "electra.tflite", "1",
                        tflite.tflite_file_name("electra", "text", FLAGS.quantize))
    interpreter = tflite.load_interpreter(path)
    dev = tasks.load_task_data(FLAGS.task, FLAGS.data_dir).dev
    label_ids = {name: i for i, name in enumerate(source.labels)}
    features = task_features.encode_texts(source.tokenizer, dev, "classification", label_ids,
                                          source.max_seq_length)
    keras_pred = np.concatenate([
        source.model({k: v[i:i + 64] for k, v in features.inputs.items()},
                     training=False)["logits"].numpy().argmax(-1)
        for i in range(0, len(dev), 64)])
    lite_pred = []
    for i in range(0, len(dev), 16):
        texts = [e.text for e in dev[i:i + 16]]
        lite_pred.append(np.asarray(tflite.run(interpreter, {"text": texts})["logits"])
                         .argmax(-1))
    lite_pred = np.concatenate(lite_pred)
    print(json.dumps({
        "benchmark": "finetuned_tflite", "task": FLAGS.task, "variant": FLAGS.quantize,
        "dev_examples": len(dev),
        "argmax_agreement": float(np.mean(lite_pred == keras_pred)),
        "keras_accuracy": float(np.mean(keras_pred == features.labels)),
        "tflite_accuracy": float(np.mean(lite_pred == features.labels)),
        "tflite_bytes": os.path.getsize(path)}))


if __name__ == "__main__":
    app.run(main)
