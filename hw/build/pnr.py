"""Place and route with a watchdog on nextpnr's router2, retrying a diverging route with the
next seed.

router2 clears congestion by rip-up and reroute, one iteration after another, logging the
overused wires of each. On a congested design it sometimes stops converging: the shipped
model at 6654c1b with seed 1 got down to 12 overused wires by iteration 86, then climbed
back to over 1 600 by iteration 198 (40 minutes in) with no end in sight, while seed 2 routed
in 55 iterations. The watchdog reads the log as it grows, stops a route that diverges or
stalls, keeps its log, and starts again with the next seed. Without router2 iteration lines
(router1, iCE40) it only waits.

A route can also fail outright for one placement: with the static placer, seed 1 of the
shipped model at the 19-stage pointwise core placed the reset synchronizer's flip-flop where
router2 found no path to the global buffer it drives ("ERROR: Failed to route arc 0.0 of
net 'rst_src_rst' ... G_CLKI_TDCC0"), while seeds 2 and 3 routed the same netlist. Such a
failure ("Failed to route") is retried with the next seed too; any other nextpnr error
(a bad constraint, a design that does not fit) is reported at once.

Routed Fmax is a draw too: seeds 1, 3 and 4 route the shipped model at 103.46, 98.13
and 86.87 MHz (round thirteen). ``run_seed_sweep`` places and routes with several seeds
and keeps the fastest, stopping at the first that meets the clock target.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

__all__ = ["ITERATION", "OUTPUT_OPTIONS", "ROUTE_FAILED", "run_place_and_route",
           "run_seed_sweep", "verdict"]

#: One router2 iteration in nextpnr's log: ``iter=86 wires=873512 overused=12 ...``
ITERATION = re.compile(r"\biter=(\d+) wires=\d+ overused=(\d+)")
#: nextpnr's error for an arc no path was found for (depends on the placement, so the seed)
ROUTE_FAILED = re.compile(r"ERROR: (Failed to route .*)")


def verdict(history, *, start=60, window=10, factor=4, slack=100, patience=150):
    """Why to stop a route, from its ``(iteration, overused)`` history, or None.

    - diverging: the last ``window`` iterations all above ``max(factor * best, best +
      slack)``; a single spike (router2 has them) does not count.
    - stalled: no new best in ``patience`` iterations.
    Neither before iteration ``start``: the first iterations of a good route swing widely.
    The defaults pass every route that finished on this project's builds (13 to 133
    iterations) and stop the two that did not, at iterations 75 and 188.
    """
    if not history or history[-1][0] < start:
        return None
    best_it, best = min(history, key=lambda h: (h[1], h[0]))
    it, now = history[-1]
    recent = [o for _, o in history[-window:]]
    if len(recent) == window and min(recent) > max(factor * best, best + slack):
        return (f"router2 is diverging: {now} overused wires at iteration {it}, after "
                f"{best} at iteration {best_it}")
    if best and it - best_it >= patience:
        return (f"router2 has stalled: {best} overused wires at iteration {best_it}, no "
                f"better in {it - best_it} iterations")
    return None


def _option(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def _with_seed(argv, seed):
    argv = list(argv)
    if "--seed" in argv:
        argv[argv.index("--seed") + 1] = str(seed)
    else:
        argv[1:1] = ["--seed", str(seed)]
    return argv


def _watch(proc, log_path: Path, log, poll_s: float, progress_s: float):
    """Wait for ``proc``; stop it and return the reason if the route goes wrong."""
    history, offset, partial, last_note = [], 0, "", time.monotonic()
    while True:
        done = proc.poll() is not None
        if log_path.exists():
            with open(log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            lines = (partial + chunk.decode(errors="replace")).split("\n")
            partial = lines.pop()
            for line in lines:
                m = ITERATION.search(line)
                if m:
                    history.append((int(m.group(1)), int(m.group(2))))
        if done:
            return None
        why = verdict(history)
        if why:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return why
        if history and time.monotonic() - last_note >= progress_s:
            best = min(o for _, o in history)
            log(f"[place and route] router2 iteration {history[-1][0]}: "
                f"{history[-1][1]} overused wires (best {best})")
            last_note = time.monotonic()
        time.sleep(poll_s)


def run_place_and_route(argv, cwd, env, log_name, *, tries=3, log=print, poll_s=5.0,
                        progress_s=300.0, error=RuntimeError) -> dict:
    """Run nextpnr (``argv``, which names its ``--log``); on a diverging or stalled route,
    try the next seed, up to ``tries`` runs in all. Returns ``{"seed": the seed that
    routed, "stopped": one line per stopped run}``.

    The output of each run goes to ``log_name``; a stopped run's nextpnr log is kept as
    ``<log>.seed<N>``. Raises ``error`` when nextpnr fails or no seed routes."""
    cwd = Path(cwd)
    seed = int(_option(argv, "--seed") or 1)
    tim = _option(argv, "--log") or _option(argv, "-l")
    reasons = []
    for attempt in range(max(1, tries)):
        run_argv = _with_seed(argv, seed)
        log_path = cwd / tim if tim else None
        if log_path is not None and log_path.exists():
            log_path.unlink()           # the watchdog must not read an earlier run's log
        out_path = cwd / log_name
        with open(out_path, "w") as out:
            proc = subprocess.Popen(run_argv, cwd=cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
            if log_path is None:
                proc.wait()
                why = None
            else:
                why = _watch(proc, log_path, log, poll_s, progress_s)
        if why is None:
            if not proc.returncode:
                return {"seed": seed, "stopped": reasons}
            text = out_path.read_text(errors="replace")
            failed = ROUTE_FAILED.search(text)
            if failed is None:
                tail = "\n".join(text.splitlines()[-25:])
                raise error(f"place and route failed (exit {proc.returncode}); log "
                            f"{out_path}:\n{tail}")
            why = f"routing failed ({failed.group(1).strip()})"
        # keep the run's log: nextpnr's own (--log), else its output
        src = log_path if log_path is not None and log_path.exists() else out_path
        kept = src.with_name(f"{src.name}.seed{seed}")
        src.replace(kept)
        reasons.append(f"seed {seed}: {why} (log {kept.name})")
        log(f"[place and route] seed {seed}: {why}; stopped"
            + (f", trying seed {seed + 1}" if attempt + 1 < tries else ""))
        seed += 1
    raise error("place and route found no routing in "
                f"{len(reasons)} attempts:\n  " + "\n  ".join(reasons) +
                "\nTry another --seed, more --pnr-tries, or a smaller design (more "
                "sparsity, fewer banks) to ease the congestion.")


#: nextpnr options naming a file it writes: a sweep keeps each seed's copy
OUTPUT_OPTIONS = ("--log", "-l", "--report", "--textcfg", "--asc", "--write", "--sdf",
                  "--placed-svg", "--routed-svg")


def _outputs(argv, log_name):
    names = [log_name] + [_option(argv, o) for o in OUTPUT_OPTIONS]
    return [n for n in dict.fromkeys(names) if n]


def run_seed_sweep(argv, cwd, env, log_name, *, seeds, fmax, target_mhz=None, tries=3,
                   log=print, error=RuntimeError, **watch) -> dict:
    """Place and route with up to ``seeds`` seeds (``--seed`` in ``argv``, then the next
    ones) and keep the run with the highest Fmax; stop at the first that reaches
    ``target_mhz``. ``fmax(cwd)`` reads a finished run's Fmax in MHz (None: unknown).

    Each seed goes through ``run_place_and_route`` (so a route that diverges or fails moves
    on to the next seed, ``tries`` runs at most per slot). Every routed run's outputs (the
    files ``argv`` names, and ``log_name``) are kept under ``seeds/seed<N>/``; the kept
    run's are moved back in place at the end. Returns ``run_place_and_route``'s dict (for
    the kept seed; ``stopped`` gathers every slot's) with ``sweep``: one
    ``{"seed", "fmax_mhz"}`` per routed run, in order."""
    if seeds <= 1:
        res = run_place_and_route(argv, cwd, env, log_name, tries=tries, log=log,
                                  error=error, **watch)
        return dict(res, sweep=[])
    cwd = Path(cwd)
    store = cwd / "seeds"
    if store.exists():
        shutil.rmtree(store)          # an earlier build's runs must not be taken for ours
    seed = int(_option(argv, "--seed") or 1)
    outputs = _outputs(argv, log_name)
    sweep, stopped = [], []
    for slot in range(seeds):
        try:
            res = run_place_and_route(_with_seed(argv, seed), cwd, env, log_name,
                                      tries=tries, log=log, error=error, **watch)
        except error:
            if not sweep:
                raise                 # no seed routed at all: nothing to keep
            log(f"[place and route] no routing from seed {seed} on; keeping the best so far")
            break
        stopped += res["stopped"]
        seed = res["seed"]
        mhz = fmax(cwd)
        sweep.append({"seed": seed, "fmax_mhz": mhz})
        kept = store / f"seed{seed}"
        kept.mkdir(parents=True)
        for name in outputs:
            if (cwd / name).exists():
                (cwd / name).replace(kept / name)
        log(f"[place and route] seed {seed}: "
            + (f"Fmax {mhz:.2f} MHz" if mhz is not None else "Fmax unknown")
            + f" (run {slot + 1} of at most {seeds})")
        if mhz is not None and target_mhz is not None and mhz >= target_mhz:
            break
        seed += 1
    best = max(sweep, key=lambda r: -1.0 if r["fmax_mhz"] is None else r["fmax_mhz"])
    for f in (store / f"seed{best['seed']}").iterdir():
        f.replace(cwd / f.name)
    (store / f"seed{best['seed']}").rmdir()
    log(f"[place and route] kept seed {best['seed']} of "
        f"{', '.join(str(r['seed']) for r in sweep)}"
        + (f" (Fmax {best['fmax_mhz']:.2f} MHz)" if best["fmax_mhz"] is not None else ""))
    return {"seed": best["seed"], "stopped": stopped, "sweep": sweep}
