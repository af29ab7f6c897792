"""Tables and figures of the weight x activity sparsity study (``sw.study``).

Reads ``OUT/results/*.json`` (whatever is there: a partial study gives a partial report) and
writes into ``OUT/report/``:

- ``table.md`` / ``table.csv``: the seed paper's tables 3 and 4 — per corpus and target weight
  sparsity, effective MACs per token and test perplexity of LSTM and EGRU (mean and standard
  deviation over seeds), EGRU activity sparsity and MAC reductions relative to the dense LSTM;
- ``composition.md`` / ``.csv``: EGRU's MAC reduction split into gate factor (3 vs 4 gates) x
  weight factor x activity factor, against the multiplicative prediction that keeps the dense
  model's activity factor at every weight sparsity;
- ``fig2_ppl_vs_mac_reduction.png`` (log x axis, both models, relative to the dense LSTM),
  ``fig3_activity_vs_weight_sparsity.png``, ``fig4_weight_decay.png``;
- ``data.json`` (every number behind the tables and figures) and ``runs.csv`` (one row per
  run).

MACs are those of the recurrent layers (``rnn_effective`` of ``sw.metrics.effective_macs``,
the papers' metric); the decoder's MACs are kept in ``runs.csv`` separately.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

REPORT_FILES = ("table.md", "table.csv", "composition.md", "composition.csv", "runs.csv",
                "data.json", "fig2_ppl_vs_mac_reduction.png",
                "fig3_activity_vs_weight_sparsity.png", "fig4_weight_decay.png",
                "fig5_pruning_vs_dense_control.png")


def load_results(out: Path) -> list[dict]:
    res = []
    for p in sorted((Path(out) / "results").glob("*.json")):
        try:
            res.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            continue
    return res


def _split(r: dict) -> dict:
    return r["eval"].get("test") or r["eval"]["valid"]


def _act(ev: dict) -> float:
    """Mean activity sparsity over layers (fraction of zero outputs)."""
    a = ev["activity_sparsity"]
    return sum(a) / len(a)


def _weight_only_macs(macs: dict) -> float:
    """MACs if every input were non-zero: sum of dense x weight density (activity ignored)."""
    return sum(L[m]["dense"] * L[m]["weight_density"] for L in macs["layers"] for m in "WR")


def run_row(r: dict) -> dict:
    ev = _split(r)
    m = ev["macs"]
    return {"id": r["id"], "corpus": r["corpus"], "rnn": r["rnn"],
            "weight_decay": r["weight_decay"], "seed": r["seed"],
            "target_sparsity": r["target_sparsity"], "control": r.get("control", 0),
            "weight_sparsity": r["weight_sparsity"],
            "split": "test" if "test" in r["eval"] else "valid", "ppl": ev.get("ppl"),
            "valid_ppl": r["eval"].get("valid", {}).get("ppl"),
            "activity_sparsity": _act(ev),
            "activity_sparsity_layers": ev["activity_sparsity"],
            "rnn_macs": m["rnn_effective"], "rnn_dense_macs": m["rnn_dense"],
            "rnn_dense_lstm_macs": m["rnn_dense_lstm"],
            "weight_only_macs": _weight_only_macs(m),
            "decoder_macs": m["decoder"]["effective"], "decoder_dense_macs": m["decoder"]["dense"],
            # per matrix (layer 0 W, layer 0 R, layer 1 W, ...): [dense MACs, input density,
            # weight density]
            "matrices": [[L[k]["dense"], L[k]["input_density"], L[k]["weight_density"]]
                         for L in m["layers"] for k in "WR"],
            "groups": r.get("groups", []), "seconds": r.get("seconds")}


def _ms(xs: list[float]) -> tuple[float, float, int]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return math.nan, math.nan, 0
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)


def aggregate(rows: list[dict], base_wd: dict) -> dict:
    """Main-group rows (each RNN at its base weight decay) -> per corpus, rnn, sparsity:
    mean/std/n of ppl, MACs, activity; plus reductions relative to the dense LSTM."""
    groups = defaultdict(list)
    for r in rows:
        if ("main" in r["groups"] and not r["control"]
                and r["weight_decay"] == base_wd.get(r["rnn"])):
            groups[(r["corpus"], r["rnn"], r["target_sparsity"])].append(r)
    agg: dict = defaultdict(lambda: defaultdict(dict))
    for (corpus, rnn, sp), rs in sorted(groups.items()):
        e = {}
        for k in ("ppl", "valid_ppl", "rnn_macs", "activity_sparsity", "weight_sparsity",
                  "weight_only_macs", "rnn_dense_macs", "rnn_dense_lstm_macs"):
            mean, sd, n = _ms([r[k] for r in rs])
            e[k], e[k + "_std"], e["n"] = mean, sd, n
        e["seeds"] = sorted(r["seed"] for r in rs)
        layers = list(zip(*[r["activity_sparsity_layers"] for r in rs]))
        e["activity_sparsity_layers"] = [statistics.fmean(x) for x in layers]
        mats = list(zip(*[r["matrices"] for r in rs]))  # per matrix, the seeds' triples
        e["matrices"] = [[m[0][0], statistics.fmean(x[1] for x in m),
                          statistics.fmean(x[2] for x in m)] for m in mats]
        agg[corpus][rnn][sp] = e
    for corpus, by_rnn in agg.items():
        # reference: the dense LSTM's MACs (falls back to the LSTM-equivalent dense count of
        # the same layer sizes when no LSTM result is present)
        ref = by_rnn.get("lstm", {}).get(0.0, {}).get("rnn_macs")
        for rnn, by_sp in by_rnn.items():
            for sp, e in by_sp.items():
                base = ref if ref else e["rnn_dense_lstm_macs"]
                e["mac_reduction_vs_dense_lstm"] = base / e["rnn_macs"]
                e["weight_factor"] = e["rnn_dense_macs"] / e["weight_only_macs"]
                e["activity_factor"] = e["weight_only_macs"] / e["rnn_macs"]
                e["gate_factor"] = e["rnn_dense_lstm_macs"] / e["rnn_dense_macs"]
    return {c: {rnn: dict(v) for rnn, v in d.items()} for c, d in agg.items()}


def composition(agg: dict) -> list[dict]:
    """EGRU reduction vs dense LSTM = gate x weight x activity factor; the multiplicative
    prediction keeps the dense EGRU's activity factor and uses the LSTM's weight factor at the
    same target sparsity."""
    rows = []
    for corpus, by_rnn in agg.items():
        eg, ls = by_rnn.get("egru", {}), by_rnn.get("lstm", {})
        a0 = eg.get(0.0, {}).get("activity_factor")
        for sp, e in sorted(eg.items()):
            lw = ls.get(sp, {}).get("mac_reduction_vs_dense_lstm")
            pred = e["gate_factor"] * a0 * lw if (a0 and lw) else math.nan
            # per matrix: every matrix keeps the input density it had in the dense EGRU, with
            # the weight density it has now (pruning changes nothing but the weights)
            m0 = eg.get(0.0, {}).get("matrices")
            ref = e["rnn_dense_lstm_macs"] if not ls.get(0.0) else ls[0.0]["rnn_macs"]
            pm = (ref / sum(d * i0 * w for (d, _, w), (_, i0, _) in zip(e["matrices"], m0))
                  if m0 else math.nan)
            rows.append({"corpus": corpus, "target_sparsity": sp,
                         "egru_weight_sparsity": e["weight_sparsity"],
                         "gate_factor": e["gate_factor"], "weight_factor": e["weight_factor"],
                         "activity_factor": e["activity_factor"],
                         "activity_sparsity": e["activity_sparsity"],
                         "egru_reduction": e["mac_reduction_vs_dense_lstm"],
                         "lstm_reduction": lw if lw else math.nan,
                         "predicted_reduction": pred,
                         "measured_over_predicted": math.nan if math.isnan(pred)
                         else e["mac_reduction_vs_dense_lstm"] / pred,
                         "per_matrix_prediction": pm,
                         "measured_over_per_matrix": e["mac_reduction_vs_dense_lstm"] / pm,
                         "input_macs_share": e["matrices"][0][0] * e["matrices"][0][1]
                         * e["matrices"][0][2] / e["rnn_macs"],
                         "egru_ppl": e["ppl"], "lstm_ppl": ls.get(sp, {}).get("ppl", math.nan)})
    return rows


def controls(rows: list[dict], sparsities: list[float]) -> dict:
    """Dense controls (fine-tuned k times like the pruning chain, never pruned) -> per corpus,
    rnn, the target sparsity of the pruned stage they match: mean/std/n of test ppl and
    activity sparsity."""
    g = defaultdict(list)
    pruned = {(r["corpus"], r["rnn"], r["weight_decay"], r["seed"], r["target_sparsity"]): r
              for r in rows if not r["control"]}
    for r in rows:
        if r["control"] and r["control"] <= len(sparsities):
            g[(r["corpus"], r["rnn"], sparsities[r["control"] - 1])].append(r)
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (c, rnn, sp), rs in sorted(g.items()):
        e = {}
        for k in ("ppl", "activity_sparsity", "rnn_macs"):
            e[k], e[k + "_std"], e["n"] = _ms([r[k] for r in rs])
        e["stages"] = rs[0]["control"]
        # paired by seed: pruned minus its own dense control (seed spread cancels)
        diffs = [pruned[key]["ppl"] - r["ppl"] for r in rs
                 if (key := (c, rnn, r["weight_decay"], r["seed"], sp)) in pruned]
        e["paired_diff"], e["paired_diff_std"], e["paired_n"] = _ms(diffs)
        out[c][rnn][sp] = e
    return {c: {rnn: dict(v) for rnn, v in d.items()} for c, d in out.items()}


def wd_sweep(rows: list[dict]) -> dict:
    """wd_sweep-group rows -> per corpus, target sparsity, weight decay: mean ppl/activity."""
    g = defaultdict(list)
    for r in rows:
        if "wd_sweep" in r["groups"]:
            g[(r["corpus"], r["target_sparsity"], r["weight_decay"])].append(r)
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (c, sp, wd), rs in sorted(g.items()):
        e = {}
        for k in ("ppl", "activity_sparsity", "rnn_macs"):
            e[k], e[k + "_std"], e["n"] = _ms([r[k] for r in rs])
        out[c][sp][wd] = e
    return {c: {sp: dict(v) for sp, v in d.items()} for c, d in out.items()}


# --------------------------------------------------------------------------------------------
# writers


def _f(x, nd=2):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{nd}f}"


def _macs(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x / 1e6:.3f}M" if x >= 1e5 else f"{x / 1e3:.1f}k"


def table_md(agg: dict, meta: dict, ctl: dict | None = None) -> str:
    lines = []
    ctl = ctl or {}
    for corpus, by_rnn in agg.items():
        sps = sorted({sp for d in by_rnn.values() for sp in d})
        lines += [f"### {corpus} ({meta.get(corpus, '')})", "",
                  ("| weight sparsity | LSTM MACs/token | LSTM test ppl | LSTM reduction | "
                  "EGRU MACs/token | EGRU test ppl | EGRU activity sparsity | EGRU reduction |"),
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        if corpus in ctl:  # dense controls: same fine-tuning as the pruned stage, unpruned
            lines[-2] += (" LSTM ppl, dense control | EGRU ppl, dense control |"
                          " LSTM pruned - control (paired) | EGRU pruned - control (paired) |")
            lines[-1] += "---:|---:|---:|---:|"
        for sp in sps:
            ls, eg = by_rnn.get("lstm", {}).get(sp), by_rnn.get("egru", {}).get(sp)

            def cell(e, k, nd=2):
                if e is None:
                    return "–"
                return f"{_f(e[k], nd)} ± {_f(e[k + '_std'], nd)}" if e["n"] > 1 else _f(e[k], nd)

            def pdiff(e):
                if not e or not e.get("paired_n"):
                    return "–"
                sd = f" ± {_f(e['paired_diff_std'])}" if e["paired_n"] > 1 else ""
                return f"{e['paired_diff']:+.2f}{sd}"

            lines.append(
                f"| {sp * 100:g}% | {_macs(ls['rnn_macs']) if ls else '–'} | {cell(ls, 'ppl')} | "
                f"{_f(ls['mac_reduction_vs_dense_lstm']) + 'x' if ls else '–'} | "
                f"{_macs(eg['rnn_macs']) if eg else '–'} | {cell(eg, 'ppl')} | "
                f"{cell(eg, 'activity_sparsity', 3)} | "
                f"{_f(eg['mac_reduction_vs_dense_lstm']) + 'x' if eg else '–'} |"
                + (f" {cell(ctl[corpus].get('lstm', {}).get(sp), 'ppl')} |"
                   f" {cell(ctl[corpus].get('egru', {}).get(sp), 'ppl')} |"
                   f" {pdiff(ctl[corpus].get('lstm', {}).get(sp))} |"
                   f" {pdiff(ctl[corpus].get('egru', {}).get(sp))} |"
                   if corpus in ctl else ""))
        ns = sorted({e["n"] for d in by_rnn.values() for e in d.values()})
        note = (f"Mean ± standard deviation over seeds (n = {', '.join(map(str, ns))}). "
                "MACs: effective multiply-accumulates per token of the recurrent layers "
                "(dense MACs x input density x weight density, per matrix). Reduction: "
                "relative to the dense LSTM.")
        if corpus in ctl:
            note += (" Dense control: the dense model fine-tuned as many times as the pruned "
                     "model of that row, without pruning (same total training); pruned - "
                     "control: test perplexity difference per seed, then mean ± std.")
        lines += ["", note, ""]
    return "\n".join(lines)


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    keys = list(rows[0])
    w = csv.DictWriter(buf, keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()


def table_rows(agg: dict) -> list[dict]:
    rows = []
    for corpus, by_rnn in agg.items():
        for rnn, by_sp in by_rnn.items():
            for sp, e in sorted(by_sp.items()):
                rows.append({"corpus": corpus, "rnn": rnn, "target_sparsity": sp,
                             "weight_sparsity": e["weight_sparsity"], "n_seeds": e["n"],
                             "test_ppl_mean": e["ppl"], "test_ppl_std": e["ppl_std"],
                             "valid_ppl_mean": e["valid_ppl"],
                             "rnn_macs_mean": e["rnn_macs"], "rnn_macs_std": e["rnn_macs_std"],
                             "activity_sparsity_mean": e["activity_sparsity"],
                             "activity_sparsity_std": e["activity_sparsity_std"],
                             "mac_reduction_vs_dense_lstm": e["mac_reduction_vs_dense_lstm"],
                             "weight_factor": e["weight_factor"],
                             "activity_factor": e["activity_factor"]})
    return rows


def composition_md(rows: list[dict]) -> str:
    lines = [("| corpus | target sparsity | EGRU weight sparsity | activity sparsity | "
              "gate x weight x activity factor | EGRU reduction (measured) | LSTM reduction | "
              "naive product (gate x dense activity factor x LSTM reduction) | "
              "measured / naive | per-matrix product (dense input densities) | "
              "measured / per-matrix | share of MACs in layer-0 W | EGRU ppl | LSTM ppl |"),
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['target_sparsity'] * 100:g}% | "
            f"{r['egru_weight_sparsity'] * 100:.1f}% | {r['activity_sparsity']:.3f} | "
            f"{r['gate_factor']:.2f} x {r['weight_factor']:.2f} x {r['activity_factor']:.2f} | "
            f"{r['egru_reduction']:.2f}x | {_f(r['lstm_reduction'])}x | "
            f"{_f(r['predicted_reduction'])}x | {_f(r['measured_over_predicted'], 3)} | "
            f"{_f(r['per_matrix_prediction'])}x | {_f(r['measured_over_per_matrix'], 3)} | "
            f"{r['input_macs_share']:.2f} | {_f(r['egru_ppl'])} | {_f(r['lstm_ppl'])} |")
    lines += ["", ("Factors: gate = 4/3 (LSTM has 4 gate blocks, EGRU 3); weight = dense MACs "
                   "/ MACs with all inputs non-zero; activity = the rest (exact product). Naive: "
                   "the dense EGRU's activity factor times the LSTM's weight-pruning reduction. "
                   "Per-matrix: every matrix keeps its dense-EGRU input density, with its own "
                   "pruned weight density — it isolates whether pruning changed the activity "
                   "(ratio ~1: no) from where global pruning left the weights.")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _legend(ax, **kw) -> None:
    """A legend only when something is labelled (partial studies: some curves are missing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def fig_ppl_vs_macs(agg: dict, path: Path) -> None:
    plt = _plt()
    corpora = list(agg)
    fig, axes = plt.subplots(1, max(1, len(corpora)), figsize=(6 * max(1, len(corpora)), 4.5),
                             squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        for rnn, style in (("lstm", "s-"), ("egru", "o-")):
            d = agg[corpus].get(rnn)
            if not d:
                continue
            sps = sorted(d)
            x = [d[s]["mac_reduction_vs_dense_lstm"] for s in sps]
            y = [d[s]["ppl"] for s in sps]
            e = [d[s]["ppl_std"] for s in sps]
            ax.errorbar(x, y, yerr=e, fmt=style, capsize=3, label=rnn.upper())
            for xi, yi, s in zip(x, y, sps):
                ax.annotate(f"{s * 100:g}%", (xi, yi), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        ls, eg = agg[corpus].get("lstm"), agg[corpus].get("egru")
        if ls and eg and 0.0 in eg:
            # multiplicative composition: the LSTM curve moved right by the dense EGRU's factor
            k = eg[0.0]["mac_reduction_vs_dense_lstm"]
            sps = sorted(ls)
            ax.plot([ls[s]["mac_reduction_vs_dense_lstm"] * k for s in sps],
                    [ls[s]["ppl"] for s in sps], "--", color="gray", alpha=0.7,
                    label=f"LSTM curve x {k:.1f} (dense EGRU factor)")
        ax.set_xscale("log")
        ax.set_xlabel("MAC reduction vs dense LSTM (recurrent layers, log)")
        ax.set_ylabel("test perplexity")
        ax.set_title(f"{corpus}: perplexity vs effective MAC reduction")
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax, title="labels: weight sparsity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_activity(agg: dict, comp: list[dict], path: Path) -> None:
    """Left: activity sparsity vs weight sparsity. Right: MAC reductions vs weight sparsity,
    measured and as the two multiplicative predictions of ``composition``."""
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5))
    for corpus, by_rnn in agg.items():
        d = by_rnn.get("egru")
        if not d:
            continue
        sps = sorted(d)
        ws = [d[s]["weight_sparsity"] * 100 for s in sps]
        ax.errorbar(ws, [d[s]["activity_sparsity"] for s in sps],
                    yerr=[d[s]["activity_sparsity_std"] for s in sps], fmt="o-", capsize=3,
                    label=f"EGRU {corpus} (mean of layers)")
        nl = len(d[sps[0]]["activity_sparsity_layers"])
        if nl > 1:
            for k in range(nl):
                ax.plot(ws, [d[s]["activity_sparsity_layers"][k] for s in sps], ":",
                        alpha=0.6, label=f"layer {k}")
    ax.set_xlabel("weight sparsity of the recurrent layers (%)")
    ax.set_ylabel("activity sparsity (fraction of zero outputs)")
    ax.set_ylim(0, 1)
    ax.set_title("EGRU activity sparsity vs weight sparsity")
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize=8)
    for corpus in agg:
        rows = [r for r in comp if r["corpus"] == corpus]
        if not rows:
            continue
        ws = [r["target_sparsity"] * 100 for r in rows]
        bx.plot(ws, [r["lstm_reduction"] for r in rows], "s-", color="C0",
                label=f"LSTM measured ({corpus})")
        bx.plot(ws, [r["egru_reduction"] for r in rows], "o-", color="C1",
                label="EGRU measured")
        bx.plot(ws, [r["predicted_reduction"] for r in rows], "--", color="gray",
                label="naive: gate x dense activity factor x LSTM")
        bx.plot(ws, [r["per_matrix_prediction"] for r in rows], ":", color="k",
                label="per matrix: dense input densities x pruned weights")
    bx.set_yscale("log")
    bx.set_xlabel("weight sparsity of the recurrent layers (%)")
    bx.set_ylabel("MAC reduction vs dense LSTM (log)")
    bx.set_title("Does activity x weight sparsity compose?")
    bx.grid(True, which="both", alpha=0.3)
    _legend(bx, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_control(agg: dict, ctl: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for corpus, by_rnn in agg.items():
        for rnn, color in (("lstm", "C0"), ("egru", "C1")):
            d = by_rnn.get(rnn)
            if not d:
                continue
            sps = sorted(d)
            ax.errorbar([s * 100 for s in sps], [d[s]["ppl"] for s in sps],
                        yerr=[d[s]["ppl_std"] for s in sps], fmt="o-", color=color,
                        capsize=3, label=f"{rnn.upper()} pruned ({corpus})")
            c = ctl.get(corpus, {}).get(rnn, {})
            if c and 0.0 in d:
                cs = [0.0, *sorted(c)]
                ys = [d[0.0]["ppl"]] + [c[s]["ppl"] for s in cs[1:]]
                es = [d[0.0]["ppl_std"]] + [c[s]["ppl_std"] for s in cs[1:]]
                ax.errorbar([s * 100 for s in cs], ys, yerr=es, fmt="s--", color=color,
                            mfc="none", capsize=3, label=f"{rnn.upper()} dense control")
    ax.set_xlabel("weight sparsity (%); control: same fine-tuning stages, unpruned")
    ax.set_ylabel("test perplexity")
    ax.set_title("Pruning vs the same extra training without pruning")
    ax.grid(True, alpha=0.3)
    _legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_wd(sweep: dict, path: Path) -> None:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for corpus, by_sp in sweep.items():
        for sp, d in sorted(by_sp.items()):
            wds = sorted(d)
            # symlog-like: weight decay 0 plotted at the left edge of a log axis
            lab = f"{corpus}, weight sparsity {sp * 100:g}%"
            a1.errorbar(range(len(wds)), [d[w]["ppl"] for w in wds],
                        yerr=[d[w]["ppl_std"] for w in wds], fmt="o-", capsize=3, label=lab)
            a2.errorbar(range(len(wds)), [d[w]["activity_sparsity"] for w in wds],
                        yerr=[d[w]["activity_sparsity_std"] for w in wds], fmt="o-",
                        capsize=3, label=lab)
            for a in (a1, a2):
                a.set_xticks(range(len(wds)), [f"{w:g}" for w in wds])
    a1.set_ylabel("test perplexity")
    a2.set_ylabel("activity sparsity")
    for a in (a1, a2):
        a.set_xlabel("AdamW weight decay")
        a.grid(True, alpha=0.3)
        _legend(a, fontsize=8)
    fig.suptitle("EGRU: test perplexity and activity sparsity vs weight decay")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def base_weight_decays(cfg: dict) -> dict:
    from .config import TrainConfig

    base = cfg["train"].get("weight_decay", TrainConfig().weight_decay)
    return {rnn: cfg.get("train_by_rnn", {}).get(rnn, {}).get("weight_decay", base)
            for rnn in cfg["rnns"]}


def make_report(cfg: dict, out, publish=None) -> list[Path]:
    out = Path(out)
    rep = out / "report"
    rep.mkdir(parents=True, exist_ok=True)
    results = load_results(out)
    rows = [run_row(r) for r in results]
    agg = aggregate(rows, base_weight_decays(cfg))
    comp = composition(agg)
    sweep = wd_sweep(rows)
    ctl = controls(rows, cfg["prune"].get("sparsities", []))
    meta = {c["name"]: f"{c['data']}, {c.get('level', 'word')} level, vocabulary cap "
            f"{c.get('vocab_cap', '–')}" for c in cfg["corpora"]}
    expected = None
    try:
        from .study import plan

        expected = len(plan(cfg))
    except (ImportError, KeyError, ValueError) as e:  # the report must still be written
        print(f"study_plots: cannot count the planned runs ({e})")
    status = (f"{len(results)} of {expected} runs finished" if expected is not None
              else f"{len(results)} runs")
    (rep / "table.md").write_text(f"<!-- {status} -->\n" + table_md(agg, meta, ctl))
    (rep / "table.csv").write_text(_csv(table_rows(agg)))
    (rep / "composition.md").write_text(composition_md(comp))
    (rep / "composition.csv").write_text(_csv(comp))
    (rep / "runs.csv").write_text(_csv(rows))
    data = {"status": status, "corpora": meta, "aggregate": agg, "composition": comp,
            "wd_sweep": sweep, "dense_controls": ctl, "runs": rows}
    (rep / "data.json").write_text(json.dumps(_jsonable(data), indent=1) + "\n")
    files = [rep / f for f in REPORT_FILES[:6]]
    if agg:
        fig_ppl_vs_macs(agg, rep / "fig2_ppl_vs_mac_reduction.png")
        fig_activity(agg, comp, rep / "fig3_activity_vs_weight_sparsity.png")
        files += [rep / "fig2_ppl_vs_mac_reduction.png",
                  rep / "fig3_activity_vs_weight_sparsity.png"]
    if sweep:
        fig_wd(sweep, rep / "fig4_weight_decay.png")
        files.append(rep / "fig4_weight_decay.png")
    if agg and ctl:
        fig_control(agg, ctl, rep / "fig5_pruning_vs_dense_control.png")
        files.append(rep / "fig5_pruning_vs_dense_control.png")
    if publish:
        dst = Path(publish)
        dst.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, dst / f.name)
    return files


def _jsonable(x):
    """Dict keys to strings and NaN to None, so data.json is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x
