"""hw.build.pnr: the router2 watchdog stops a diverging or stalled route and retries with
the next seed; it leaves converging routes alone. nextpnr is played by a small script that
writes router2's iteration lines to its --log."""

import sys
import textwrap

import pytest

from hw.build.flow import _routed_fmax
from hw.build.pnr import run_place_and_route, run_seed_sweep, verdict


def _history(values, first=1):
    return [(first + k, v) for k, v in enumerate(values)]


def _first_stop(values, **kw):
    """The iteration at which the watchdog stops this route, or None."""
    hist = _history(values)
    for n in range(1, len(hist) + 1):
        if verdict(hist[:n], **kw):
            return hist[n - 1][0]
    return None


def test_a_converging_route_runs_to_the_end():
    # the shape of the default build at 39523fd (seed 1): fast fall, a long tail of a few
    # overused wires with spikes, done at iteration 133
    values = ([50_000 // (k + 1) for k in range(40)] + [131, 90, 60, 47, 50] * 4
              + [37, 18, 44, 48, 21, 23, 5, 5, 5, 50, 5, 5] * 6 + [3, 2, 1, 0])
    assert _first_stop(values) is None


def test_a_diverging_route_is_stopped_after_a_sustained_rise():
    # seed 1 at 6654c1b: down to 12 by iteration 86, then back up past 1 600
    values = [40_000 // (k + 1) for k in range(86)] + [12] + [20 + 12 * k for k in range(120)]
    stop = _first_stop(values)
    assert stop is not None and 100 < stop < 120
    why = verdict(_history(values[:stop]))
    assert "diverging" in why and "iteration 87" in why


def test_one_spike_is_not_divergence():
    values = [10_000 // (k + 1) for k in range(70)] + [5_000] * 5 + [100] * 20
    assert _first_stop(values) is None


def test_a_stalled_route_is_stopped():
    values = [9_000 // (k + 1) for k in range(30)] + [300] * 200
    stop = _first_stop(values)
    assert stop == 30 + 150
    assert "stalled" in verdict(_history(values[:stop]))


def test_nothing_is_judged_before_the_start_iteration():
    assert verdict(_history([10, 5_000, 6_000, 7_000] * 10)) is None   # 40 iterations


FAKE_NEXTPNR = textwrap.dedent("""
    import json, sys, time
    argv = sys.argv[1:]
    seed = int(argv[argv.index("--seed") + 1])
    log = open(argv[argv.index("--log") + 1], "w")
    log.write(f"seed={{seed}}\\n")
    diverging = seed in {diverging}
    if seed in {unroutable}:                    # router2 found no path for one arc
        print("ERROR: Failed to route arc 0.0 of net 'rst_src_rst', from X66/Y3/Q3_SLICE "
              "to X0/Y0/G_CLKI_TDCC0.")
        print("0 warnings, 1 error"); sys.exit(1)
    for it in range(1, 200):
        over = (20 + 50 * it) if diverging and it > 30 else max(0, 3000 // it - 30)
        log.write(f"Info:     iter={{it}} wires=1000 overused={{over}} overuse={{over}}\\n")
        log.flush()
        if over == 0:
            if "--report" in argv:
                fmax = {fmax}.get(seed, 50.0)
                with open(argv[argv.index("--report") + 1], "w") as f:
                    json.dump({{"fmax": {{"clk": {{"achieved": fmax, "constraint": 125.0}}}}}}, f)
            print("Routing complete."); sys.exit({exit_code})
        time.sleep(0.002)
    time.sleep(60)                               # a diverging route never ends by itself
""")


def _fake(tmp_path, diverging=(), exit_code=0, unroutable=(), fmax=None):
    script = tmp_path / "fake_nextpnr.py"
    script.write_text(FAKE_NEXTPNR.format(diverging=set(diverging) or "set()",
                                          unroutable=set(unroutable) or "set()",
                                          exit_code=exit_code, fmax=dict(fmax or {})))
    return [sys.executable, str(script), "--seed", "1", "--log", "top.tim", "--json", "x"]


def _run(tmp_path, argv, tries=3):
    notes = []
    res = run_place_and_route(argv, tmp_path, None, "place_and_route.log", tries=tries,
                              log=notes.append, poll_s=0.02, progress_s=0.0)
    return res, notes


def test_diverging_seed_is_retried_with_the_next(tmp_path):
    res, notes = _run(tmp_path, _fake(tmp_path, diverging={1}))
    assert res["seed"] == 2 and len(res["stopped"]) == 1
    assert res["stopped"][0].startswith("seed 1: router2 is diverging")
    assert any("trying seed 2" in n for n in notes)
    assert (tmp_path / "top.tim.seed1").exists()        # the stopped run's log is kept
    assert "overused=0" in (tmp_path / "top.tim").read_text()
    assert "Routing complete." in (tmp_path / "place_and_route.log").read_text()


def test_a_route_that_converges_is_not_touched(tmp_path):
    res, notes = _run(tmp_path, _fake(tmp_path))
    assert res == {"seed": 1, "stopped": []}
    assert not any("stopped" in n for n in notes)
    assert not list(tmp_path.glob("top.tim.seed*"))


def test_no_seed_routes_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError) as exc:
        _run(tmp_path, _fake(tmp_path, diverging={1, 2}), tries=2)
    msg = str(exc.value)
    assert "no routing in 2 attempts" in msg and "seed 1:" in msg and "seed 2:" in msg
    assert "--seed" in msg and "sparsity" in msg
    assert (tmp_path / "top.tim.seed1").exists() and (tmp_path / "top.tim.seed2").exists()


def test_nextpnr_failure_is_reported_with_its_log(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)exit 3.*Routing complete"):
        _run(tmp_path, _fake(tmp_path, exit_code=3))


def test_an_arc_that_fails_to_route_is_retried_with_the_next_seed(tmp_path):
    """A placement that leaves one arc unroutable ("Failed to route arc") is the seed's
    fault, not the design's: the next seed is tried, and the failed run's output kept."""
    res, notes = _run(tmp_path, _fake(tmp_path, unroutable={1}))
    assert res["seed"] == 2 and len(res["stopped"]) == 1
    assert res["stopped"][0].startswith(
        "seed 1: routing failed (Failed to route arc 0.0 of net 'rst_src_rst'")
    assert any("trying seed 2" in n for n in notes)
    kept = list(tmp_path.glob("*.seed1"))
    assert len(kept) == 1


def test_unroutable_on_every_seed_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)no routing in 2 attempts.*routing failed"):
        _run(tmp_path, _fake(tmp_path, unroutable={1, 2}), tries=2)


# --- seed sweep: several seeds, the fastest kept -------------------------------------------

def _sweep(tmp_path, seeds, target=None, **fake):
    argv = _fake(tmp_path, **fake) + ["--report", "nextpnr.json"]
    notes = []
    res = run_seed_sweep(argv, tmp_path, None, "place_and_route.log", seeds=seeds,
                         fmax=_routed_fmax, target_mhz=target, tries=2, log=notes.append,
                         poll_s=0.02, progress_s=0.0)
    return res, notes


def _kept_seed(tmp_path):
    return (tmp_path / "top.tim").read_text().splitlines()[0]


def test_a_sweep_keeps_the_fastest_seed(tmp_path):
    res, notes = _sweep(tmp_path, 3, target=125.0, fmax={1: 81.95, 2: 89.81, 3: 83.58})
    assert res["seed"] == 2 and res["stopped"] == []
    assert res["sweep"] == [{"seed": 1, "fmax_mhz": 81.95}, {"seed": 2, "fmax_mhz": 89.81},
                            {"seed": 3, "fmax_mhz": 83.58}]
    # the kept run's files are in place, every other run's under seeds/
    assert _kept_seed(tmp_path) == "seed=2"
    assert _routed_fmax(tmp_path) == 89.81
    assert "Routing complete." in (tmp_path / "place_and_route.log").read_text()
    for other in (1, 3):
        kept = tmp_path / "seeds" / f"seed{other}"
        assert (kept / "top.tim").read_text().startswith(f"seed={other}")
        assert _routed_fmax(kept) == {1: 81.95, 3: 83.58}[other]
    assert not (tmp_path / "seeds" / "seed2").exists()
    assert any("kept seed 2 of 1, 2, 3" in n for n in notes)


def test_a_sweep_stops_at_the_first_seed_that_meets_the_target(tmp_path):
    res, _ = _sweep(tmp_path, 3, target=85.0, fmax={1: 80.0, 2: 90.0, 3: 95.0})
    assert res["seed"] == 2 and [r["seed"] for r in res["sweep"]] == [1, 2]
    assert _kept_seed(tmp_path) == "seed=2"
    assert not (tmp_path / "seeds" / "seed3").exists()


def test_a_diverging_seed_in_a_sweep_moves_on_to_the_next(tmp_path):
    res, _ = _sweep(tmp_path, 2, fmax={1: 80.0, 3: 88.0}, diverging={2})
    assert [r["seed"] for r in res["sweep"]] == [1, 3] and res["seed"] == 3
    assert len(res["stopped"]) == 1 and res["stopped"][0].startswith("seed 2: router2 is")
    assert _kept_seed(tmp_path) == "seed=3"


def test_a_sweep_keeps_the_best_so_far_when_later_seeds_do_not_route(tmp_path):
    res, notes = _sweep(tmp_path, 3, fmax={1: 80.0}, unroutable={2, 3})
    assert res["seed"] == 1 and [r["seed"] for r in res["sweep"]] == [1]
    assert _kept_seed(tmp_path) == "seed=1"
    assert any("keeping the best so far" in n for n in notes)


def test_a_sweep_where_no_seed_routes_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="no routing in 2 attempts"):
        _sweep(tmp_path, 3, unroutable={1, 2})


def test_one_seed_is_a_plain_place_and_route(tmp_path):
    (tmp_path / "seeds" / "seed9").mkdir(parents=True)      # an earlier build's sweep
    res, _ = _sweep(tmp_path, 1, fmax={1: 80.0})
    assert res == {"seed": 1, "stopped": [], "sweep": []}
    assert _kept_seed(tmp_path) == "seed=1"


def test_a_sweep_clears_an_earlier_builds_runs(tmp_path):
    stale = tmp_path / "seeds" / "seed9"
    stale.mkdir(parents=True)
    (stale / "top.tim").write_text("seed=9")
    _sweep(tmp_path, 2, fmax={1: 80.0, 2: 70.0})
    assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == ["seed2"]
