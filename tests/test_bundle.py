"""Exported bundles: the reader rejects anything corrupt, truncated or tampered, with a message
that names the file; an interrupted export leaves nothing that loads."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

import hw.bundle
from hw.bundle import BundleError, load_bundle
from hw.fixedpoint import Format
from sw.export import export_bundle
from sw.quant import EventNet

torch.set_num_threads(1)   # 2 shared cores: no thread oversubscription


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    net = EventNet(12, [16, 8], threshold_init=0.1).double()
    with torch.no_grad():
        net.weight_hh_l0.mul_(torch.rand_like(net.weight_hh_l0) > 0.5)
    path, _ = export_bundle(net, tmp_path_factory.mktemp("b") / "bundle", fmt=Format(),
                            banks=4, vocab=[f"t{i}" for i in range(12)])
    return path


@pytest.fixture
def bundle(good, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(good, dst)
    return dst


def _flip(path, offset=-3):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _refresh_checksum(root, rel):
    m = json.loads((root / "manifest.json").read_text())
    m["files"][rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    (root / "manifest.json").write_text(json.dumps(m))


def test_good_bundle_loads(good):
    b = load_bundle(good)
    assert b.banks == 4 and b.vocab_size == 12 and b.vocab[3] == "t3"
    assert set(b.memories) == {"l0.w", "l0.r", "l1.w", "l1.r", "dec.w"}


@pytest.mark.parametrize("rel", ["arrays/l0.w.npy", "mem/l0.r.b1.ent.hex",
                                 "mem/dec.w.b0.ptr.hex", "tables/tanh.hex", "vocab.json"])
def test_flipped_byte_rejected(bundle, rel):
    _flip(bundle / rel)
    with pytest.raises(BundleError, match="checksum mismatch") as e:
        load_bundle(bundle)
    assert rel in str(e.value)


def test_truncated_file_rejected(bundle):
    p = bundle / "arrays/l1.r.npy"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(BundleError, match="l1.r.npy: checksum"):
        load_bundle(bundle)


def test_missing_file_rejected(bundle):
    (bundle / "mem/l0.w.b2.ent.hex").unlink()
    with pytest.raises(BundleError, match="l0.w.b2.ent.hex: listed in the manifest but missing"):
        load_bundle(bundle)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(bundle)


@pytest.mark.parametrize("key,value", [("bundle_version", 2), ("fixed_point_version", 0),
                                       ("bundle_version", None)])
def test_manifest_version_rejected(bundle, key, value):
    m = json.loads((bundle / "manifest.json").read_text())
    if value is None:
        del m[key]
    else:
        m[key] = value
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=key):
        load_bundle(bundle)


def test_garbage_manifest_rejected(bundle):
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle)


def test_tampered_weight_with_fixed_checksum_rejected(bundle):
    """A weight changed in a memory image, checksum recomputed: images disagree with arrays."""
    rel = "mem/l0.r.b1.ent.hex"
    lines = (bundle / rel).read_text().split()
    word = int(lines[0], 16)
    lines[0] = f"{word ^ 0x01:0{len(lines[0])}x}"
    (bundle / rel).write_text("\n".join(lines) + "\n")
    _refresh_checksum(bundle, rel)
    with pytest.raises(BundleError, match="memory image disagrees with arrays/l0.r.npy"):
        load_bundle(bundle)


def test_tampered_array_with_fixed_checksum_rejected(bundle):
    """A dense array changed (and re-checksummed): the images no longer match it."""
    rel = "arrays/l1.w.npy"
    a = np.load(bundle / rel)
    a[0, 0] = a[0, 0] + 1 if a[0, 0] < 100 else a[0, 0] - 1
    np.save(bundle / rel, a)
    _refresh_checksum(bundle, rel)
    with pytest.raises(BundleError, match="disagrees with arrays/l1.w.npy"):
        load_bundle(bundle)


def test_out_of_range_array_with_fixed_checksum_rejected(bundle):
    rel = "arrays/l0.theta.npy"
    a = np.load(bundle / rel)
    a[0] = 0
    np.save(bundle / rel, a)
    _refresh_checksum(bundle, rel)
    with pytest.raises(BundleError, match="thresholds must be >= 1"):
        load_bundle(bundle)


@pytest.mark.parametrize("fail_at", [1, 5, 40])
def test_interrupted_export_leaves_no_bundle(tmp_path, monkeypatch, fail_at):
    torch.manual_seed(1)
    net = EventNet(12, [16, 8], threshold_init=0.1).double()
    calls = {"n": 0}
    real = hw.bundle.os.fsync

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError("disk full (simulated)")
        return real(fd)

    monkeypatch.setattr(hw.bundle.os, "fsync", failing_fsync)
    with pytest.raises(Exception, match="simulated"):
        export_bundle(net, tmp_path / "out", fmt=Format(), banks=4)
    monkeypatch.setattr(hw.bundle.os, "fsync", real)
    assert not (tmp_path / "out").exists()
    for leftover in tmp_path.iterdir():            # no temp folder that could pass for one
        with pytest.raises(BundleError):
            load_bundle(leftover)


def test_interrupted_overwrite_keeps_old_bundle(good, tmp_path, monkeypatch):
    dst = tmp_path / "b"
    shutil.copytree(good, dst)
    before = (dst / "manifest.json").read_bytes()
    torch.manual_seed(2)
    net = EventNet(12, [16, 8], threshold_init=0.1).double()
    monkeypatch.setattr(hw.bundle.os, "fsync", lambda fd: (_ for _ in ()).throw(
        OSError("simulated")))
    with pytest.raises(OSError):
        export_bundle(net, dst, fmt=Format(), banks=4, overwrite=True)
    assert (dst / "manifest.json").read_bytes() == before
    load_bundle(dst)
