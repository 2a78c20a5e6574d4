"""electra_tf: ELECTRA pretraining, fine-tuning and export with TensorFlow and Keras 3."""

from setuptools import find_packages, setup

setup(
    name="electra_tf",
    version="0.1.0",
    description="Pretrain, fine-tune and ship ELECTRA text encoders with TensorFlow and Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["electra_tf", "electra_tf.*"]),
    # One consistent set (docs/architecture.md, "Facts about the stack"): these resolve together; constraints.txt pins the rest.
    install_requires=[
        "tensorflow==2.20.*",
        "tensorflow-text==2.20.*",
        # Minor versions pinned: modeling/dropout.py reaches into keras-hub's TransformerEncoder
        # layout as of these releases (and checks it), so upgrades are deliberate.
        "keras==3.15.*",
        "keras-hub==0.32.*",
        "tf-models-official==2.20.0",
        # tensorflow-model-optimization (via tf-models-official) holds absl-py at ~=1.2.
        "absl-py>=1.4",
        "ai-edge-litert",
        # TF Serving's own request messages for the export's warm-up records; versioned with
        # TensorFlow, so pinned to the same release.
        "tensorflow-serving-api==2.20.0",
        "pyyaml>=6.0",
        # HuggingFace checkpoints in and out (tools/convert_checkpoint.py), NumPy mode: no torch.
        "safetensors>=0.4",
        "tqdm>=4.60",
    ],
    extras_require={
        # scikit-learn, SciPy and seqeval: references the hand-written fine-tuning metrics are
        # tested against (tests/test_task_metrics.py); never a runtime dependency.
        "test": ["pytest>=8", "scikit-learn", "scipy", "seqeval"],
        # Reference for benchmarks/corpus_builder.py only; never a runtime dependency.
        "bench": ["tokenizers>=0.20"],
        # tools/build_pretraining_data.py --runner=beam (DirectRunner here; Dataflow, Flink or
        # Spark on a cluster). Optional: constraints.txt holds protobuf, pillow, pyarrow and
        # python-dateutil at versions it resolves with beside TensorFlow 2.20.
        "beam": ["apache-beam==2.77.*"],
    },
    scripts=["tools/build_vocab.py", "tools/build_pretraining_data.py",
             "tools/convert_checkpoint.py"],
    entry_points={
        "console_scripts": [
            "electra-train=electra_tf.train:run",
            "electra-finetune=electra_tf.finetune:run",
            "electra-export=electra_tf.export:run",
        ]
    },
)
