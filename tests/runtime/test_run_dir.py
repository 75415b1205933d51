"""Run folders and atomic writes. Run: pytest tests/train/test_run_dir.py -q"""

import os

import pytest

from flowrl.runtime.progress import progress
from flowrl.runtime.run_dir import atomic_write_bytes, create_run_dir, write_config


def test_timestamped_folders_are_unique(tmp_path):
    a = create_run_dir(tmp_path)
    b = create_run_dir(tmp_path)  # same second: gets a -2 suffix instead of reusing `a`
    assert a != b and a.is_dir() and b.is_dir()


def test_named_folder_refuses_overwrite_unless_resumed(tmp_path):
    run = create_run_dir(tmp_path, "exp")
    assert create_run_dir(tmp_path, "exp") == run  # still empty: reusable
    write_config(run, "lr: 0.1\n")
    with pytest.raises(FileExistsError, match="resume=True"):
        create_run_dir(tmp_path, "exp")
    assert create_run_dir(tmp_path, "exp", resume=True) == run
    with pytest.raises(FileNotFoundError):
        create_run_dir(tmp_path, "missing", resume=True)
    with pytest.raises(ValueError):
        create_run_dir(tmp_path, None, resume=True)


def test_write_config_is_atomic_and_replaces(tmp_path, monkeypatch):
    path = write_config(tmp_path, "a: 1\n")
    assert path.read_text() == "a: 1\n"
    write_config(tmp_path, "a: 2\n")
    assert path.read_text() == "a: 2\n"

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"a: 3\n")
    assert path.read_text() == "a: 2\n"  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temp file left


def test_progress_disabled_off_tty_and_refuses_tensor_postfix(capsys):
    import torch

    bar = progress(10, desc="train")  # pytest captures stderr: not a TTY
    assert bar.disable
    bar.close()
    with progress(3, desc="forced", disable=False) as bar:
        bar.set_postfix(reward=0.5)
        bar.update(1)
        with pytest.raises(TypeError, match="MetricsLogger.log"):
            bar.set_postfix(reward=torch.tensor(0.5))
    assert "reward=0.5" in capsys.readouterr().err
