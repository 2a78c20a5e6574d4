"""Fault injection for pretraining and fine-tuning: bad data, devices, damaged checkpoints,
a shared or unwritable model dir, full disks, leftovers and malformed settings.

Each case ends with an exact outcome: the exit status and the one `error:` line of the binary
(run as a subprocess with a timeout, so a hang fails the test), or the library's one-line
error, and which files are there afterwards.

| input | expected outcome | test |
|---|---|---|
| data whose dataset.json records 0 examples | exit 2, one line "... holds no examples", nothing written, no hang | test_empty_data_is_refused_before_training |
| `--strategy=mirrored --num_gpus=4` without GPUs | exit 2, one line naming --num_gpus=4 and the 0 GPUs seen, no hang | test_more_gpus_than_visible_is_refused |
| TF_CONFIG not JSON / without "task" / task index out of range | StrategyError, one line starting "TF_CONFIG ..." | test_invalid_tf_config_is_named |
| a shard truncated (shard_bytes or examples_per_shard in dataset.json), a shard of another max_seq_length, empty shard files | DataError naming the shard (or the data) before training; model dir not created | test_damaged_or_foreign_shard_is_named_before_training |
| `--train_data='DIR/*'` (matches dataset.json too); a stray shard of another build | reads the listed shards; the stray one is named | test_glob_matching_the_sidecar_reads_the_listed_shards |
| a shard with flipped bytes (right size) and `--verify_data` (runtime.verify_data) | DataError naming the shard before training; model dir not created | test_verify_data_reads_every_record |
| a shard with flipped bytes met mid-run | exit 2, one line naming the shard and the intact ckpt-8; next run with good data resumes from ckpt-8 | test_damaged_shard_met_mid_run_is_named_and_resume_works |
| newest checkpoint truncated; load_discriminator / load_pretrainer | warning naming ckpt-8; ckpt-4's weights loaded | test_loaders_fall_back_from_a_truncated_checkpoint |
| a fine-tuned dir's checkpoint truncated; load_task_model | warning naming ckpt-1; the kept seed's seed-1/best/model-1 loaded | test_task_model_loader_falls_back_to_the_kept_seed_copy |
| newest checkpoint truncated; the same training command | warning naming ckpt-8, resumed from ckpt-4, exit 0 | test_resume_falls_back_from_a_truncated_checkpoint |
| newest checkpoint of a TrainCheckpoint (fine-tuning's) truncated; all of them damaged | restore falls back with a warning; all damaged: CheckpointError, one line | test_train_checkpoint_falls_back_and_refuses_all_damaged |
| a second trainer on a model dir in use | exit 2, one line "in use by another run (process PID)"; the first finishes, metrics once | test_second_trainer_on_a_model_dir_is_refused |
| the lock's holder killed with SIGKILL | the lock is free again | test_lock_is_released_when_the_holder_is_killed |
| fine-tuning into an output dir in use | ModelDirError "in use by another run", nothing written | test_finetuning_output_dir_is_locked |
| `--model_dir` a file (no --config), or under a file | exit 2, one line "is a file" / "cannot be created" | test_model_dir_that_is_a_file_is_refused |
| `--model_dir` on a read-only filesystem | exit 2, one line "is not writable" | test_unwritable_model_dir_is_refused |
| full disk at a checkpoint save | exit 2, one line naming ckpt-12 and the intact ckpt-8; no ckpt-12_temp/ or ckpt-12.*; after freeing space the run resumes from ckpt-8 | test_full_disk_at_checkpoint_keeps_the_last_good_one |
| full disk at the first write (vocab.txt/config.yaml) | ModelDirError "the disk is full", no temporary left | test_full_disk_at_first_write_leaves_nothing_half_written |
| `--override=model.vocab_size=3000` | exit 2, one line: set from the vocabulary, which has 64 tokens | test_vocab_size_override_is_refused |
| ckpt-N_temp/, checkpoint.tmpHEX, .NAME.tmp-DEADPID in the model dir | removed at start, under the lock | test_stale_temporaries_are_removed_at_start |
| data of another max_seq_length | one sentence naming dataset.json and data.max_seq_length | test_sidecar_mismatch_message_is_a_sentence |
| fine-tuning `--override` that --init's checkpoint fixes, or a wrong model.vocab_size | FinetuneError, one line, nothing written | test_finetune_override_that_would_be_ignored_is_refused |
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_trainer import (REPO, binary_args, checkpoint_values, make_vocab, run_binary,
                          start_binary, tiny_config, write_data)

FAULT_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "fault_injection_train.py")
# Every subprocess has a timeout: a hang fails the test instead of blocking the suite.
TIMEOUT = int(os.environ.get("FAULT_TEST_TIMEOUT", "240"))


def error_line(err):
    """The one `error:` line of a binary's stderr (asserts there is exactly one)."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return lines[0][len("error: "):]


def add_to_sidecar(data_dir, **fields):
    path = os.path.join(data_dir, "dataset.json")
    with open(path) as f:
        sidecar = json.load(f)
    sidecar.update(fields)
    with open(path, "w") as f:
        json.dump(sidecar, f)
    return sidecar


def shard_paths(data_dir):
    return sorted(glob.glob(os.path.join(data_dir, "pretrain-*")))


def copy_data(src_pattern, dst):
    shutil.copytree(os.path.dirname(src_pattern), dst)
    return os.path.join(dst, "pretrain-*")


def flip_bytes(path, offset=200, count=8):
    with open(path, "r+b") as f:
        f.seek(offset)
        data = bytearray(f.read(count))
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def truncate_newest(model_dir, step=8):
    data = os.path.join(model_dir, f"ckpt-{step}.data-00000-of-00001")
    os.truncate(data, os.path.getsize(data) // 2)


def listing(directory):
    return sorted(os.listdir(directory))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An 8-step run (ckpt-4, ckpt-8) of the tiny model, shared by the cases below."""
    import keras
    from electra_tf.training import trainer

    root = tmp_path_factory.mktemp("faults")
    vocab, tokens = make_vocab(root)
    data = write_data(str(root / "data"), tokens)
    model_dir = str(root / "run")
    trainer.train(tiny_config("training.train_steps=8"), train_data=data,
                  model_dir=model_dir, vocab=vocab, log_fn=lambda s: None)
    keras.backend.clear_session()
    return dict(root=root, vocab=vocab, tokens=tokens, data=data, model_dir=model_dir)


def copy_run(trained, tmp_path, name="run"):
    model_dir = str(tmp_path / name)
    shutil.copytree(trained["model_dir"], model_dir)
    return model_dir


# --- data ------------------------------------------------------------------------------------

def write_empty_data(directory, tokens):
    """What a build of a corpus too short for one example looks like: empty shards and a
    sidecar of 0 examples."""
    from electra_tf.text import vocab as vocab_lib

    os.makedirs(directory)
    names = [f"pretrain-{i:05d}-of-00002.tfrecord" for i in range(2)]
    for name in names:
        open(os.path.join(directory, name), "wb").close()
    with open(os.path.join(directory, "dataset.json"), "w") as f:
        json.dump(dict(vocab_hash=vocab_lib.vocab_hash(tokens), vocab_size=len(tokens),
                       lower_case=True, max_seq_length=32, documents=0, examples=0, tokens=0,
                       num_shards=2, compression="", shards=names,
                       examples_per_shard=[0, 0], shard_bytes=[0, 0]), f)
    return directory


def test_empty_data_is_refused_before_training(trained, tmp_path):
    empty = write_empty_data(str(tmp_path / "empty"), trained["tokens"])
    model_dir = str(tmp_path / "run")
    rc, _, err = run_binary(binary_args(empty, model_dir, trained["vocab"], "--train_steps=4"),
                            timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == (
        f"{empty} holds no examples ({tmp_path / 'empty' / 'dataset.json'} records 0): the "
        "corpus was empty or unreadable; rebuild the data from text with "
        "tools/build_pretraining_data.py")
    assert not os.path.exists(model_dir)


def test_damaged_or_foreign_shard_is_named_before_training(trained, tmp_path):
    from electra_tf.data.pretraining_reader import DataError
    from electra_tf.training import trainer

    def refused(data, match):
        model_dir = str(tmp_path / "run")
        with pytest.raises(DataError) as e:
            trainer.train(tiny_config("training.train_steps=4"), train_data=data,
                          model_dir=model_dir, vocab=trained["vocab"], log_fn=lambda s: None)
        assert "\n" not in str(e.value) and match in str(e.value), str(e.value)
        assert not os.path.exists(model_dir)
        return str(e.value)

    # With shard_bytes (what the builder records): a truncated shard is named by its size.
    data = copy_data(trained["data"], str(tmp_path / "sized"))
    shards = shard_paths(os.path.dirname(data))
    add_to_sidecar(os.path.dirname(data), examples_per_shard=[48, 48],
                   shard_bytes=[os.path.getsize(p) for p in shards])
    size = os.path.getsize(shards[1])
    os.truncate(shards[1], size - 100)
    message = refused(data, shards[1])
    assert f"is {size - 100} bytes but" in message and f"records {size} (shard_bytes)" in message

    # Without shard_bytes: the size range of examples_per_shard examples of the sidecar's
    # max_seq_length and vocabulary.
    data = copy_data(trained["data"], str(tmp_path / "counted"))
    add_to_sidecar(os.path.dirname(data), examples_per_shard=[48, 48])
    shard = shard_paths(os.path.dirname(data))[0]
    os.truncate(shard, 1000)
    refused(data, f"{shard} is 1000 bytes but its 48 examples of max_seq_length=32")

    # A shard of another build (max_seq_length 64) put in place of one of this build.
    data = copy_data(trained["data"], str(tmp_path / "foreign"))
    add_to_sidecar(os.path.dirname(data), examples_per_shard=[48, 48])
    other = write_data(str(tmp_path / "long"), trained["tokens"], seq=64)
    shard = shard_paths(os.path.dirname(data))[1]
    shutil.copyfile(shard_paths(os.path.dirname(other))[1], shard)
    refused(data, f"{shard} is")

    # Shard files that are empty while the sidecar (without per-shard counts) promises data.
    data = copy_data(trained["data"], str(tmp_path / "hollow"))
    for shard in shard_paths(os.path.dirname(data)):
        os.truncate(shard, 0)
    refused(data, "every shard")


def test_glob_matching_the_sidecar_reads_the_listed_shards(trained, tmp_path):
    from electra_tf.data import pretraining_reader as reader

    directory = os.path.dirname(trained["data"])
    everything = os.path.join(directory, "*")  # dataset.json matches too
    assert reader.shard_files(everything) == shard_paths(directory)
    batches = list(reader.pretraining_dataset(everything, 8, 32, shuffle=False, repeat=False))
    assert len(batches) == 96 // 8

    # A TFRecord of another build in the same folder is not silently read.
    data = copy_data(trained["data"], str(tmp_path / "mixed"))
    stray = os.path.join(os.path.dirname(data), "pretrain-00000-of-00009.tfrecord")
    shutil.copyfile(shard_paths(os.path.dirname(data))[0], stray)
    with pytest.raises(reader.DataError) as e:
        reader.pretraining_dataset(os.path.join(os.path.dirname(data), "*"), 8, 32)
    assert str(e.value).startswith(f"{stray} matches ") and "is not a shard listed in" in str(
        e.value)
    # The directory itself reads the listed shards only.
    assert reader.shard_files(os.path.dirname(data)) == [
        p for p in shard_paths(os.path.dirname(data)) if p != stray]


def test_verify_data_reads_every_record(trained, tmp_path):
    from electra_tf.data import pretraining_reader as reader

    data = copy_data(trained["data"], str(tmp_path / "flipped"))
    add_to_sidecar(os.path.dirname(data), examples_per_shard=[48, 48])
    shard = shard_paths(os.path.dirname(data))[1]
    flip_bytes(shard)
    reader.check_shards(data)  # the size is right: the cheap check passes
    with pytest.raises(reader.DataError) as e:
        reader.check_shards(data, full=True)
    assert str(e.value).startswith(f"{shard} is damaged after ") and "\n" not in str(e.value)
    assert reader.find_damaged_shard(data)[0] == shard
    assert reader.find_damaged_shard(trained["data"]) is None
    # The trainer with --verify_data (runtime.verify_data) refuses it before any work.
    from electra_tf.training import trainer
    model_dir = str(tmp_path / "run")
    with pytest.raises(reader.DataError, match=f"^{shard} is damaged after "):
        trainer.train(tiny_config("training.train_steps=4", "runtime.verify_data=true"),
                      train_data=data, model_dir=model_dir, vocab=trained["vocab"])
    assert not os.path.exists(model_dir)


def test_damaged_shard_met_mid_run_is_named_and_resume_works(trained, tmp_path):
    import tensorflow as tf

    model_dir = copy_run(trained, tmp_path)
    before = checkpoint_values(os.path.join(model_dir, "ckpt-8"))
    # Damaged in place (the checkpointed input state names the files it was reading): a byte
    # of every record flipped, the size unchanged, so only reading finds it.
    shard = shard_paths(os.path.dirname(trained["data"]))[1]
    with open(shard, "rb") as f:
        intact = f.read()
    try:
        for offset in range(100, len(intact), 175):
            flip_bytes(shard, offset, 1)
        rc, _, err = run_binary(binary_args(trained["data"], model_dir, None,
                                            "--train_steps=12"), timeout=TIMEOUT)
    finally:
        with open(shard, "wb") as f:
            f.write(intact)
    assert rc == 2
    line = error_line(err)
    assert line.startswith(f"{shard} (--train_data) is damaged after "), line
    assert line.endswith(
        f"training stopped after step 8 and the last good checkpoint {model_dir}/ckpt-8 is "
        "intact: rebuild the data (rerun tools/build_pretraining_data.py with the same flags) "
        "and run the same command to resume"), line
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-8")
    after = checkpoint_values(os.path.join(model_dir, "ckpt-8"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # The data repaired, the same command resumes from ckpt-8.
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, None, "--train_steps=12"),
                            timeout=TIMEOUT)
    assert rc == 0, err[-3000:]
    assert f"resumed from {model_dir}/ckpt-8 at step 8" in err
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-12")


# --- devices and cluster settings ------------------------------------------------------------

def test_more_gpus_than_visible_is_refused(trained, tmp_path):
    model_dir = str(tmp_path / "run")
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, trained["vocab"],
                                        "--strategy=mirrored", "--num_gpus=4"),
                            timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == ("--num_gpus=4 but TensorFlow sees 0 GPUs on this machine "
                               "(CUDA_VISIBLE_DEVICES=''); pass --num_gpus=0 to train on the "
                               "CPU")
    assert not os.path.exists(model_dir)


def test_invalid_tf_config_is_named():
    script = """
import json, os, sys
from electra_tf.training import strategy
out = []
for value in sys.argv[1:]:
    os.environ["TF_CONFIG"] = value
    try:
        strategy.make_strategy("multi_worker_mirrored")
        out.append("no error")
    except strategy.StrategyError as e:
        out.append(str(e))
print(json.dumps(out))
"""
    cases = ["{not json", json.dumps({"cluster": {"worker": ["localhost:1"]}}),
             json.dumps({"cluster": {"worker": ["localhost:1"]},
                         "task": {"type": "worker", "index": 3}})]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", script] + cases, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    messages = json.loads(done.stdout.strip().splitlines()[-1])
    form = ('set it on every worker to the form {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": 0}}')
    assert messages == [
        "TF_CONFIG is not valid JSON (Expecting property name enclosed in double quotes at "
        f"character 1); {form}",
        'TF_CONFIG has no "task" object with "type" and "index" (which worker this process '
        f"is); {form}",
        f"TF_CONFIG task.index=3 is not an index of cluster.worker (0..0); {form}"]


# --- damaged checkpoints ---------------------------------------------------------------------

def test_loaders_fall_back_from_a_truncated_checkpoint(trained, tmp_path, caplog):
    import electra_tf
    from electra_tf import model_dir as model_dir_lib

    model_dir = copy_run(trained, tmp_path)
    truncate_newest(model_dir)
    good = checkpoint_values(os.path.join(model_dir, "ckpt-4"))
    with caplog.at_level("WARNING"):
        opened = model_dir_lib.open_model_dir(model_dir)
        pretrainer = electra_tf.load_pretrainer(model_dir)
        discriminator = electra_tf.load_discriminator(model_dir)
    assert opened.checkpoint == os.path.join(model_dir, "ckpt-4")
    warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert warnings and all(w.startswith(f"checkpoint {model_dir}/ckpt-8 is damaged (")
                            and w.endswith(f"falling back to the older {model_dir}/ckpt-4")
                            for w in warnings), warnings
    arrays = list(good.values())
    for variable in pretrainer.trainable_variables + discriminator.trainable_variables:
        value = variable.numpy()
        assert any(a.shape == value.shape and np.array_equal(a, value) for a in arrays), \
            variable.path
    # Every checkpoint damaged: one line, no IndexError.
    os.truncate(os.path.join(model_dir, "ckpt-4.data-00000-of-00001"), 100)
    with pytest.raises(model_dir_lib.ModelDirError) as e:
        electra_tf.load_discriminator(model_dir)
    assert str(e.value).startswith(f"every checkpoint in {model_dir} is damaged (ckpt-8: ")
    assert "\n" not in str(e.value)


def test_task_model_loader_falls_back_to_the_kept_seed_copy(trained, tmp_path, caplog):
    """A fine-tuned dir keeps one checkpoint, written from the kept seed's `seed-N/best/`
    copy: the loader falls back to that copy."""
    import tensorflow as tf
    from electra_tf import model_loading

    out = tmp_path / "finetuned"
    (out / "seed-1").mkdir(parents=True)
    for name in ("config.yaml", "vocab.txt"):
        shutil.copyfile(os.path.join(trained["model_dir"], name), out / name)
    info = {"task": "classification", "kind": "classification", "labels": ["neg", "pos"],
            "max_seq_length": 16}
    (out / "finetune.json").write_text(json.dumps(info))
    (out / "results.json").write_text(json.dumps({"kept_seed": 1}))
    (out / "seed-1" / "state.json").write_text(json.dumps(
        {"epochs": [], "best": {"epoch": 1, "metrics": {}, "checkpoint": "model-1"}}))
    model = model_loading.build_task_model_from_dir(str(out))
    for directory, name in ((out / "seed-1" / "best", "model"), (out, "ckpt")):
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(directory),
                                   max_to_keep=1, checkpoint_name=name).save(
            checkpoint_number=1)
    truncate_newest(str(out), 1)
    with caplog.at_level("WARNING"):
        loaded, loaded_info = model_loading.load_task_model(str(out))
    assert loaded_info["labels"] == ["neg", "pos"]
    assert f"checkpoint {out}/ckpt-1 is damaged" in caplog.text
    assert f"falling back to the older {out}/seed-1/best/model-1" in caplog.text
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_resume_falls_back_from_a_truncated_checkpoint(trained, tmp_path):
    model_dir = copy_run(trained, tmp_path)
    truncate_newest(model_dir)
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, None, "--train_steps=12"),
                            timeout=TIMEOUT)
    assert rc == 0, err[-3000:]
    assert f"checkpoint {model_dir}/ckpt-8 is damaged (IndexError: Read less bytes than " \
           f"requested); falling back to the older {model_dir}/ckpt-4" in err
    assert f"resumed from {model_dir}/ckpt-4 at step 4" in err
    from electra_tf.training import metrics_log
    assert [r["step"] for r in metrics_log.read_metrics(model_dir, "train")] == [4, 8, 12]
    values = checkpoint_values(os.path.join(model_dir, "ckpt-12"))
    assert int(values["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 12


def test_train_checkpoint_falls_back_and_refuses_all_damaged(tmp_path, caplog):
    """The class behind pretraining's and fine-tuning's resume (finetune_loop keeps two)."""
    import tensorflow as tf
    from electra_tf.training.checkpointing import CheckpointError, TrainCheckpoint

    directory = str(tmp_path / "seed-1")
    value = tf.Variable(0.0)
    ckpt = TrainCheckpoint(directory, max_to_keep=2, value=value)
    for step in (10, 20):
        value.assign(float(step))
        ckpt.save(step)
    truncate_newest(directory, 20)
    value.assign(-1.0)
    restored = TrainCheckpoint(directory, max_to_keep=2, value=value)
    with caplog.at_level("WARNING"):
        assert restored.restore() == os.path.join(directory, "ckpt-10")
    assert float(value.numpy()) == 10.0
    assert f"checkpoint {directory}/ckpt-20 is damaged" in caplog.text
    assert restored.latest() == os.path.join(directory, "ckpt-10")
    os.truncate(os.path.join(directory, "ckpt-10.data-00000-of-00001"), 10)
    with pytest.raises(CheckpointError) as e:
        TrainCheckpoint(directory, max_to_keep=2, value=value).restore()
    assert str(e.value).startswith(f"every checkpoint in {directory} is damaged (ckpt-20: ")
    assert "\n" not in str(e.value)


# --- the model dir: lock, writability, full disks, leftovers ---------------------------------

def test_second_trainer_on_a_model_dir_is_refused(trained, tmp_path):
    from electra_tf.training import metrics_log

    model_dir = str(tmp_path / "run")
    ready, go = str(tmp_path / "paused"), str(tmp_path / "go")
    args = binary_args(trained["data"], model_dir, trained["vocab"], "--train_steps=8")
    first = start_binary([args[0], FAULT_RUNNER] + args[3:] + [
        "--pause_at_step=4", f"--ready_file={ready}", f"--resume_file={go}"])
    try:
        deadline = time.time() + TIMEOUT
        while not os.path.exists(ready):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.time() < deadline, "the first run never reached step 4"
            time.sleep(0.2)
        rc, _, err = run_binary(args, timeout=TIMEOUT)
        assert rc == 2
        assert error_line(err) == (
            f"--model_dir={model_dir} is in use by another run (process {first.pid}): two runs "
            "would overwrite each other's checkpoints; wait for it to finish, stop it, or pass "
            "another directory")
        open(go, "w").close()
        _, err = first.communicate(timeout=TIMEOUT)
        assert first.returncode == 0, err[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert [(r["split"], r["step"]) for r in metrics_log.read_metrics(model_dir)] == [
        ("train", 4), ("train", 8)]


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    from electra_tf import model_dir as model_dir_lib

    directory = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from electra_tf.model_dir import "
         "lock_model_dir; lock_model_dir(sys.argv[1]); print('locked', flush=True); "
         "time.sleep(600)", directory],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(model_dir_lib.ModelDirError, match=f"process {holder.pid}"):
            model_dir_lib.lock_model_dir(directory)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=TIMEOUT)
    with model_dir_lib.lock_model_dir(directory):  # no stale lock after a kill -9
        pass


def test_finetuning_output_dir_is_locked(tmp_path):
    from electra_tf import model_dir as model_dir_lib
    from test_finetune import _options, _sentiment_csv, _vocab
    from electra_tf.training.finetuning import run_finetuning

    data = tmp_path / "data"
    data.mkdir()
    _sentiment_csv(data / "train.csv", 64, 0)
    _sentiment_csv(data / "dev.csv", 16, 1)
    out = str(tmp_path / "out")
    with model_dir_lib.lock_model_dir(out):
        with pytest.raises(model_dir_lib.ModelDirError) as e:
            run_finetuning(_options(str(data), out, _vocab(tmp_path), epochs=1),
                           log=lambda s: None)
    assert str(e.value).startswith(f"--output_dir={out} is in use by another run (process "
                                   f"{os.getpid()})")
    assert listing(out) == [model_dir_lib.LOCK_FILE]


def test_model_dir_that_is_a_file_is_refused(trained, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory\n")
    args = binary_args(trained["data"], str(a_file), trained["vocab"])
    del args[3]  # no --config: a resumed run's command
    rc, _, err = run_binary(args, timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == (f"--model_dir={a_file} is a file; pass a directory (it is "
                               "created if missing)")
    rc, _, err = run_binary(binary_args(trained["data"], str(a_file / "run"), trained["vocab"]),
                            timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == (f"--model_dir={a_file / 'run'} cannot be created: {a_file} is a "
                               "file; pass a directory path")
    assert a_file.read_text() == "not a directory\n"


def test_unwritable_model_dir_is_refused(trained, small_disk):
    disk = small_disk(64)
    remount = subprocess.run(["mount", "-o", "remount,ro", disk], capture_output=True,
                             text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
    model_dir = os.path.join(disk, "run")
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, trained["vocab"]),
                            timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == (
        f"--model_dir={model_dir} cannot be created: {disk} is not writable (by this user, or "
        "a read-only filesystem); pass a writable directory")


def test_full_disk_at_checkpoint_keeps_the_last_good_one(trained, small_disk):
    import tensorflow as tf

    source = trained["model_dir"]
    used = sum(os.path.getsize(p) for p in glob.glob(os.path.join(source, "**"),
                                                     recursive=True) if os.path.isfile(p))
    one = sum(os.path.getsize(p) for p in glob.glob(os.path.join(source, "ckpt-8.*")))
    # Room for what the run has and a part of one more checkpoint, not a whole one.
    disk = small_disk((used + one // 2) // 1024 + 64)
    model_dir = os.path.join(disk, "run")
    shutil.copytree(source, model_dir)
    before = checkpoint_values(os.path.join(model_dir, "ckpt-8"))
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, None, "--train_steps=12"),
                            timeout=TIMEOUT)
    assert rc == 2, err[-3000:]
    assert error_line(err) == (
        f"saving checkpoint {model_dir}/ckpt-12 failed: the disk is full; the last good "
        f"checkpoint {model_dir}/ckpt-8 is intact: free space and run the same command to "
        "resume from it")
    names = listing(model_dir)
    assert not [n for n in names if n.startswith("ckpt-12") or ".tmp" in n], names
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-8")
    after = checkpoint_values(os.path.join(model_dir, "ckpt-8"))
    assert all(np.array_equal(before[k], after[k]) for k in before)
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:
        assert all(json.loads(line) for line in f)
    # Space freed (the older checkpoint removed), the same command resumes from ckpt-8.
    for path in glob.glob(os.path.join(model_dir, "ckpt-4.*")):
        os.remove(path)
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, None, "--train_steps=12"),
                            timeout=TIMEOUT)
    assert rc == 0, err[-3000:]
    assert f"resumed from {model_dir}/ckpt-8 at step 8" in err


def test_full_disk_at_first_write_leaves_nothing_half_written(trained, small_disk):
    from electra_tf import model_dir as model_dir_lib
    from electra_tf.training import trainer

    disk = small_disk(64)
    fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last page
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    model_dir = os.path.join(disk, "run")
    with pytest.raises(model_dir_lib.ModelDirError) as e:
        trainer.train(tiny_config("training.train_steps=4"), train_data=trained["data"],
                      model_dir=model_dir, vocab=trained["vocab"], log_fn=lambda s: None)
    assert str(e.value) == (
        f"writing {model_dir}/vocab.txt failed: the disk is full; free space (or pass a "
        "directory on a larger disk) and run the same command")
    assert listing(model_dir) == [model_dir_lib.LOCK_FILE]


def test_vocab_size_override_is_refused(trained, tmp_path):
    model_dir = str(tmp_path / "run")
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, trained["vocab"],
                                        "--override=model.vocab_size=3000"), timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == (
        "--override model.vocab_size=3000: model.vocab_size is set from the vocabulary, and "
        f"{trained['vocab']} has 64 tokens; drop the override (or pass the vocabulary of that "
        "size with --vocab)")
    assert not os.path.exists(model_dir)


def test_stale_temporaries_are_removed_at_start(trained, tmp_path):
    from electra_tf.training import trainer

    model_dir = copy_run(trained, tmp_path)
    os.makedirs(os.path.join(model_dir, "ckpt-12_temp"))
    with open(os.path.join(model_dir, "ckpt-12_temp", "part-00000-of-00001.data-00000-of-00001"),
              "wb") as f:
        f.write(b"torn")
    dead = 999999999  # no such process
    leftovers = ["ckpt-12_temp", "checkpoint.tmp0123456789abcdef", f".config.yaml.tmp-{dead}"]
    for name in leftovers[1:]:
        with open(os.path.join(model_dir, name), "w") as f:
            f.write("torn")
    live = f".notes.txt.tmp-{os.getpid()}"  # a live writer's temporary is kept
    open(os.path.join(model_dir, live), "w").close()
    lines = []
    result = trainer.train(tiny_config("training.train_steps=8"), train_data=trained["data"],
                           model_dir=model_dir, log_fn=lines.append)
    assert result["step"] == 8
    names = listing(model_dir)
    assert not set(leftovers) & set(names) and live in names, names
    assert any(line.startswith("removed 3 leftover(s) of an interrupted run: ")
               for line in lines), lines


def test_sidecar_mismatch_message_is_a_sentence(trained, tmp_path):
    from electra_tf.data.pretraining_reader import DataMismatchError
    from electra_tf.training import trainer

    longer = write_data(str(tmp_path / "long"), trained["tokens"], examples=16, seq=64)
    with pytest.raises(DataMismatchError) as e:
        trainer.train(tiny_config("training.train_steps=4"), train_data=longer,
                      model_dir=str(tmp_path / "run"), vocab=trained["vocab"])
    assert str(e.value) == (
        f"{tmp_path / 'long' / 'dataset.json'} records max_seq_length=64 but this run's config "
        "sets data.max_seq_length=32; rebuild the data with --max_seq_length=32 or set "
        "data.max_seq_length=64")


def test_finetune_override_that_would_be_ignored_is_refused(trained, tmp_path):
    from test_finetune import _options, _sentiment_csv
    from electra_tf.training.finetuning import FinetuneError, run_finetuning

    data = tmp_path / "data"
    data.mkdir()
    _sentiment_csv(data / "train.csv", 64, 0)
    _sentiment_csv(data / "dev.csv", 16, 1)
    out = str(tmp_path / "out")
    with pytest.raises(FinetuneError) as e:
        run_finetuning(_options(str(data), out, None, init=trained["model_dir"], overrides=[
            "model.hidden_size=64"]), log=lambda s: None)
    assert str(e.value) == (
        f"--override sets model.hidden_size=64 but the model of --init={trained['model_dir']} "
        "has model.hidden_size=32 (its config.yaml), which its checkpoint fixes; drop the "
        "override")
    with pytest.raises(FinetuneError) as e:
        run_finetuning(_options(str(data), out, trained["vocab"], overrides=[
            "model.vocab_size=3000"]), log=lambda s: None)
    assert str(e.value) == (
        f"--override model.vocab_size=3000: model.vocab_size is set from the vocabulary, and "
        f"{trained['vocab']} has 64 tokens; drop the override")
    assert not os.path.exists(out)


def test_loaders_take_a_vocab_beside_the_model_dir(trained, tmp_path):
    """A model dir without its vocab.txt loads with `vocab=` (export --vocab), and without it
    the refusal names the missing file."""
    import electra_tf
    from electra_tf import model_dir as model_dir_lib

    model_dir = copy_run(trained, tmp_path)
    vocab = str(tmp_path / "elsewhere.txt")
    shutil.move(os.path.join(model_dir, "vocab.txt"), vocab)
    with pytest.raises(model_dir_lib.ModelDirError) as e:
        electra_tf.load_discriminator(model_dir)
    assert "vocab.txt" in str(e.value) and "\n" not in str(e.value)
    discriminator = electra_tf.load_discriminator(model_dir, vocab=vocab)
    pretrainer = electra_tf.load_pretrainer(model_dir, vocab=vocab)
    ids = np.array([[2, 5, 6, 7, 3]], dtype="int32")
    batch = {"token_ids": ids, "segment_ids": np.zeros_like(ids),
             "padding_mask": np.ones_like(ids)}
    np.testing.assert_allclose(np.asarray(discriminator(batch)),
                               np.asarray(pretrainer.discriminator(batch)), atol=1e-6)


def test_pretraining_into_a_finetuned_dir_changes_nothing(trained, tmp_path):
    """A fine-tuned dir as --model_dir was refused only after its config.yaml was rewritten."""
    model_dir = copy_run(trained, tmp_path)
    info = {"task": "classification", "kind": "classification", "labels": ["负面", "正面"],
            "max_seq_length": 16}
    with open(os.path.join(model_dir, "finetune.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, ensure_ascii=False)
    before = {name: open(os.path.join(model_dir, name), "rb").read()
              for name in sorted(os.listdir(model_dir))
              if os.path.isfile(os.path.join(model_dir, name))}
    rc, _, err = run_binary(binary_args(trained["data"], model_dir, trained["vocab"],
                                        "--train_steps=10"), timeout=TIMEOUT)
    assert rc == 2
    assert error_line(err) == (f"{model_dir} holds a fine-tuned model "
                               f"({model_dir}/finetune.json); pretrain into another "
                               "--model_dir")
    after = {name: open(os.path.join(model_dir, name), "rb").read()
             for name in sorted(os.listdir(model_dir))
             if os.path.isfile(os.path.join(model_dir, name))}
    assert after == before
