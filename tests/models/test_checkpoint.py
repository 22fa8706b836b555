"""The samstar-sam/1 format: one writer, one reader, the registry and the training loop agree on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from samstar_env.errors import InputError
from samstar_env.models import load_sam
from samstar_env.models.checkpoint import (
    SAMSTAR_FORMAT,
    checkpoint_config,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from samstar_env.models.tiny import SAMSTAR_TINY_CONFIG, build_tiny_sam
from tests.conftest import TEST_SAM_CONFIG

WEIGHTS = Path(__file__).resolve().parents[2] / "samstar_env" / "models" / "weights" / "samstar_tiny.pt"


def test_resaving_the_shipped_weights_reproduces_their_bytes(tmp_path):
    # The shipped file was written by the training loop's writer; the one writer now left must write
    # the same bytes (same name, same torch), so the format did not drift in the move. A torch release
    # that changes torch.save's zip layout would also trip this: then re-check the format by hand.
    sam = load_checkpoint(WEIGHTS)
    digest = save_checkpoint(sam, SAMSTAR_TINY_CONFIG, tmp_path / WEIGHTS.name, sha256_file=True)
    shipped = WEIGHTS.with_name(WEIGHTS.name + ".sha256").read_text().split()[0]
    assert digest == shipped == file_sha256(tmp_path / WEIGHTS.name)
    assert (tmp_path / (WEIGHTS.name + ".sha256")).read_text() == digest + "\n"


def test_round_trip_through_every_reader(tmp_path):
    sam = build_tiny_sam(TEST_SAM_CONFIG, seed=5)
    path = tmp_path / "sub" / "m.pt"
    digest = save_checkpoint(sam, TEST_SAM_CONFIG, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    # No sidecar unless asked, and no temporary file left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"format", "config", "model"} and blob["format"] == SAMSTAR_FORMAT
    assert checkpoint_config(path) == TEST_SAM_CONFIG
    expected = sam.state_dict()
    for loaded in (load_checkpoint(path), load_sam(path, device="cpu")):
        assert not loaded.training
        assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_reader_errors_name_the_file(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(build_tiny_sam(TEST_SAM_CONFIG, seed=0).state_dict(), plain)
    with pytest.raises(InputError, match="plain.pt: not a samstar-sam/1 file"):
        load_checkpoint(plain)
    with pytest.raises(ValueError, match="not a samstar-sam/1 file"):
        checkpoint_config(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt is not a PyTorch checkpoint"):
        load_checkpoint(junk)
    bad_config = tmp_path / "bad.pt"
    torch.save({"format": SAMSTAR_FORMAT, "config": {"no_such_field": 1}, "model": {}}, bad_config)
    with pytest.raises(ValueError, match="invalid config"):
        load_checkpoint(bad_config)
    # The sidecar is checked unless told not to.
    good = tmp_path / "good.pt"
    save_checkpoint(build_tiny_sam(TEST_SAM_CONFIG, seed=0), TEST_SAM_CONFIG, good, sha256_file=True)
    (tmp_path / "good.pt.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(ValueError, match="sha256"):
        load_checkpoint(good)
    assert load_checkpoint(good, check_sha256=False) is not None
