"""Atomic writes and the cache directory (electra_tf.files), and the modules that use them."""

import os
import stat
import subprocess
import sys

import pytest

from electra_tf import files
from electra_tf.files import atomic_write, atomic_write_bytes, atomic_write_text, temp_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def strict_umask():
    """Runs the test under umask 077, where a plain `open()` would make owner-only files."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_failed_block_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_write(str(path)) as f:
            f.write("new, half written")
            f.flush()
            assert os.path.exists(temp_path(str(path)))
            raise RuntimeError("crash mid-write")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["config.yaml"]


def test_a_finished_block_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "data.bin"  # the directory is created
    atomic_write_bytes(str(path), b"\x00\x01")
    atomic_write_bytes(str(path), b"\x02")
    assert path.read_bytes() == b"\x02"
    assert os.listdir(tmp_path / "sub") == ["data.bin"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(str(path), "a"):
            pass


def test_published_files_are_world_readable_under_a_strict_umask(tmp_path, strict_umask):
    text, data = tmp_path / "a.txt", tmp_path / "b.bin"
    atomic_write_text(str(text), "x\n")
    atomic_write_bytes(str(data), b"x")
    assert _mode(text) == _mode(data) == files.FILE_MODE == 0o644


def test_text_is_utf8_with_unix_newlines(tmp_path):
    path = tmp_path / "zh.txt"
    text = "你好，世界\n预训练语言模型\n"
    atomic_write_text(str(path), text)
    assert path.read_bytes() == text.encode("utf-8")
    with open(path, encoding="utf-8") as f:
        assert f.read() == text


def test_default_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ELECTRA_TF_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert files.default_cache_dir() == str(tmp_path / "explicit")
    monkeypatch.delenv("ELECTRA_TF_CACHE")
    assert files.default_cache_dir() == str(tmp_path / "xdg" / "electra_tf")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert files.default_cache_dir() == str(tmp_path / "home" / ".cache" / "electra_tf")


def test_calibration_reads_the_corpus_from_electra_tf_cache(monkeypatch, tmp_path):
    from electra_tf.export import calibration
    from electra_tf.text import embedded_corpus

    asked = []

    def fake_corpus_files(cache_dir):
        asked.append(cache_dir)
        return []

    monkeypatch.setattr(embedded_corpus, "embedded_corpus_files", fake_corpus_files)
    # Set after import: the directory is looked up when the corpus is needed.
    monkeypatch.setenv("ELECTRA_TF_CACHE", str(tmp_path / "cache"))
    assert calibration._texts_from_corpus(None, 8) == []
    assert calibration._texts_from_corpus(str(tmp_path / "flag"), 8) == []
    assert asked == [str(tmp_path / "cache"), str(tmp_path / "flag")]


def test_build_pretraining_data_tool_defaults_to_electra_tf_cache(monkeypatch, tmp_path):
    # In a child process: importing the tool defines absl flags, which may clash with flags
    # other tests' binaries define in this process.
    monkeypatch.setenv("ELECTRA_TF_CACHE", str(tmp_path / "cache"))
    tool = os.path.join(REPO, "tools", "build_pretraining_data.py")
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('tool', {tool!r}); "
            "tool = importlib.util.module_from_spec(spec); spec.loader.exec_module(tool); "
            "print(tool.resolve_cache_dir(None)); print(tool.resolve_cache_dir('/flag'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.stdout.splitlines() == [str(tmp_path / "cache"), "/flag"]


def test_written_vocab_is_world_readable(tmp_path, strict_umask):
    from electra_tf.text.vocab import SPECIAL_TOKENS, load_vocab, write_vocab

    tokens = list(SPECIAL_TOKENS) + ["the", "猫", "##s"]
    path = tmp_path / "vocab.txt"
    write_vocab(tokens, str(path))
    assert _mode(path) == 0o644
    assert load_vocab(str(path)) == tokens
    assert os.listdir(tmp_path) == ["vocab.txt"]
