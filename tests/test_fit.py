"""Fit check: block RAM arithmetic, multiplier count, refusals with advice."""

import pytest

from hw.build import cli
from hw.build.boards import BOARDS
from hw.build.fit import FitError, brams_for, check_fit, estimate
from hw.bundle import load_bundle
from sim.random_bundle import random_bundle

ECP5 = BOARDS["ulx3s"].device("85F").bram_shapes


@pytest.mark.parametrize("depth,width,n", [
    (1024, 18, 1), (512, 36, 1), (2048, 9, 1), (16384, 1, 1), (2048, 18, 2),
    (4096, 8, 2), (100, 40, 2), (16384, 14, 14), (1, 1, 1), (1025, 18, 2),
])
def test_brams_for(depth, width, n):
    assert brams_for(depth, width, ECP5) == n


def test_device_totals():
    devs = BOARDS["ulx3s"].devices
    assert [devs[k][0].bram for k in ("12F", "25F", "45F", "85F")] == [32, 56, 108, 208]
    assert [devs[k][0].dsp for k in ("12F", "25F", "45F", "85F")] == [28, 28, 72, 156]
    assert devs["85F"][0].luts == 83640


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    return {
        "tiny": load_bundle(random_bundle(root / "tiny", layers=1, hidden=8, vocab=12,
                                          banks=2, sparsity=0.5, seed=1)),
        "lanes": load_bundle(random_bundle(root / "lanes", layers=1, hidden=32, vocab=32,
                                           banks=16, sparsity=0.9, seed=2)),
        "dense": load_bundle(random_bundle(root / "dense", layers=2, hidden=256, vocab=256,
                                           banks=4, sparsity=0.0, seed=3,
                                           weight_scale=0.05)),
    }


def test_tiny_fits_everywhere(bundles):
    for dev in ("12F", "25F", "45F", "85F"):
        rep = check_fit(bundles["tiny"], "ulx3s", dev)
        assert rep.fits and rep.bram <= 12     # (a layer lane: its accumulators and biases)
        # P MAC lanes + 2 multipliers per pointwise lane, per layer, plus the readout lanes
        assert rep.dsp == 2 * (3 * 1 + 1)
    assert "fits" in rep.summary()


def test_refuses_too_many_lanes_and_names_a_bigger_device(bundles):
    with pytest.raises(FitError) as err:
        check_fit(bundles["lanes"], "ulx3s", "12F")
    msg = str(err.value)
    assert "MULT18X18D" in msg and "64" in msg
    assert "fewer banks" in msg
    import re
    bigger = re.search(r"--device (\w+) fits", msg).group(1)
    assert bigger in ("45F", "85F")
    assert check_fit(bundles["lanes"], "ulx3s", bigger).fits


def test_refuses_dense_model_on_every_device(bundles):
    rep = estimate(bundles["dense"], "ulx3s", "85F")
    assert not rep.fits and rep.bram > 208
    with pytest.raises(FitError) as err:
        check_fit(bundles["dense"], "ulx3s", "85F")
    msg = str(err.value)
    for advice in ("more weight sparsity", "fewer banks", "narrower weights",
                   "no ulx3s device fits"):
        assert advice in msg
    assert rep.bram_by_group["weights"] > rep.bram / 2


def test_icebreaker_is_small(bundles):
    assert not estimate(bundles["lanes"], "icebreaker", "UP5K").fits
    rep = estimate(bundles["tiny"], "icebreaker", "UP5K")
    assert rep.device.part == "iCE40UP5K"


def test_cli_refuses_before_synthesis(bundles, tmp_path, capsys):
    rc = cli.main(["--board", "ulx3s", "--device", "12F", "--bundle",
                   str(bundles["lanes"].path), "--out", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and "what to change" in err
    assert not (tmp_path / "out" / "top.il").exists()
