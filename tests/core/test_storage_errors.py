"""A write that fails (no space left, read-only, permission denied) ends as one StorageError line
naming the cause, the path and the fix; the finished runs in the store stay intact (issue 10)."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

import pytest
import torch

import kdutils as kd


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def finished(tmp_path, monkeypatch):
    """A store under KD_RUNS_ROOT holding one finished run (no training needed), and its files."""
    monkeypatch.setenv("KD_RUNS_ROOT", str(tmp_path / "runs"))
    store = kd.RunStore()
    store.begin("k1", {"model": "mlp"})
    store.finish("k1", {"history": []}, {"w": torch.arange(4.0)}, {"participation": torch.ones(3)})
    store.save_eval("k1", "accuracy-0", {"accuracy": 0.5})
    return store, _files(store.root)


def _intact(store, before):
    assert _files(store.root) == before, "the store changed"
    done = store.load_finished("k1")
    assert done is not None and torch.equal(done["state_dict"]["w"], torch.arange(4.0))
    assert not [p for p in store.root.rglob("*.tmp")], "a temporary file was left behind"


def _writes(store):
    """Every kind of write the store does: a new run, a checkpoint, a finished run, an evaluation, a tensor."""
    yield lambda: store.begin("k2", {"model": "other"})
    yield lambda: store.save_checkpoint("k1", {"epoch": 1, "model": {"w": torch.zeros(2)}})
    yield lambda: store.finish("k1", {"history": [1]}, {"w": torch.zeros(4)}, {})
    yield lambda: store.save_eval("k1", "accuracy-0", {"accuracy": 0.0})
    yield lambda: store.save_tensor("k1", "logits", torch.zeros(3))


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


NO_SPACE = r"^cannot write {path}.*: no space left on the device; free some space there, or point KD_RUNS_ROOT at a folder with room \(the run store, now {root}\)$"


def test_full_disk_at_fsync_names_the_cause_and_the_fix(finished, monkeypatch):
    store, before = finished
    monkeypatch.setattr(os, "fsync", _no_space)
    for write in _writes(store):
        with pytest.raises(
            kd.StorageError, match=NO_SPACE.format(path=re.escape(str(store.root)), root=re.escape(str(store.root)))
        ) as info:
            write()
        assert isinstance(info.value.__cause__, OSError) and info.value.errno == errno.ENOSPC
        assert "\n" not in str(info.value)
    monkeypatch.undo()
    _intact(store, before)


def test_full_disk_inside_a_torch_write_is_not_a_torch_error(finished, monkeypatch):
    store, before = finished
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:10])  # half written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Full(real(fd, mode, *a, **k)))
    with pytest.raises(kd.StorageError, match=r"model\.pt: no space left on the device; .*KD_RUNS_ROOT"):
        store.finish("k1", {"history": [1]}, {"w": torch.zeros(4)}, {})
    monkeypatch.undo()
    _intact(store, before)


def test_read_only_file_system_names_kd_runs_root(finished, monkeypatch):
    store, before = finished

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), dir)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    for write in _writes(store):
        with pytest.raises(
            kd.StorageError,
            match=r"^cannot write .*: read-only file system; point KD_RUNS_ROOT "
            r"at a folder you can write to \(the run store, now .*\)$",
        ):
            write()
    monkeypatch.undo()
    _intact(store, before)


def test_read_only_folder_permission_denied(finished):
    store, before = finished
    folders = [store.root, store.path("k1")]
    for d in folders:
        d.chmod(0o555)
    try:
        probe = store.root / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:  # root ignores the mode bits
            probe.unlink()
            pytest.skip("chmod does not stop this user from writing (root)")
        for write in _writes(store):
            with pytest.raises(
                kd.StorageError,
                match=r"^cannot write .*: permission denied; point KD_RUNS_ROOT "
                r"at a folder you can write to",
            ):
                write()
    finally:
        for d in folders:
            d.chmod(0o755)
    _intact(store, before)


def test_storage_errors_elsewhere_name_the_right_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(
        kd.StorageError,
        match=r"cache.pt: no space left on the device; .* point KD_DATA_ROOT at a "
        r"folder with room \(the dataset root, now ",
    ):
        kd.io.atomic_torch_save({"x": 1}, tmp_path / "data" / "cache" / "cache.pt")
    results = kd.Results("99_test", "smoke")
    results.add("digits", "KD", 0, {"accuracy": 0.5})
    with pytest.raises(kd.StorageError, match=r"results.csv: no space left on the device; .*output_dir / figures_dir"):
        results.save(tmp_path / "out")
    assert not (tmp_path / "out" / "results.csv").exists()


def test_other_os_errors_keep_the_system_words(tmp_path, monkeypatch):
    def too_long(*a, **k):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))

    monkeypatch.setattr(os, "fsync", too_long)
    with pytest.raises(kd.StorageError, match=r"cannot write .*x.json: File name too long \(errno \d+\)$"):
        kd.io.atomic_write_json({}, tmp_path / "x.json")


def test_written_files_get_the_usual_mode(tmp_path):
    kd.io.atomic_write_json({}, tmp_path / "x.json")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("under", [True, False])
def test_a_store_path_through_a_regular_file_names_the_file_and_kd_runs_root(tmp_path, monkeypatch, under):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    root = blocker / "runs" if under else blocker
    monkeypatch.setenv("KD_RUNS_ROOT", str(root))
    exp = kd.Experiment(kd.configure("smoke", epochs=1, teacher_epochs=1, progress=False, device="cpu"))
    with pytest.raises(
        kd.StorageError, match=rf"cannot write .*: {blocker} is a file, not a folder; point KD_RUNS_ROOT"
    ):
        exp.student("ce", seed=0)
