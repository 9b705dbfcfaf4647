"""`keras-colour study results`: naturalness per model with 95% Wilson intervals, beside the thesis's Table 4."""

import csv
import math
import os

import matplotlib.pyplot as plt

from keras_colour.study.create import GROUND_TRUTH, load_manifest
from keras_colour.study.store import AnswerStore

# Thesis Table 4: share of images judged real photographs.
THESIS_TABLE_4 = {"ground truth": 0.87, "pix2pix": 0.53, "Gorriz et al.": 0.26, "Gorriz et al. + VGG": 0.38}
Z_95 = 1.959963984540054


def wilson_interval(successes, trials, z=Z_95):
    """95% Wilson score interval of a proportion; (nan, nan) for no trials."""
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def flag_participants(answers, min_response_ms=800):
    """Participants to look at: a median response faster than `min_response_ms`, or always the same answer."""
    by_participant = {}
    for a in answers:
        by_participant.setdefault(a["participant"], []).append(a)
    flagged = {}
    for participant, rows in by_participant.items():
        times = sorted(r["response_ms"] for r in rows)
        median = times[len(times) // 2]
        reasons = []
        if median < min_response_ms:
            reasons.append(f"median response {median} ms < {min_response_ms} ms")
        if len(rows) > 1 and len({r["answer"] for r in rows}) == 1:
            reasons.append(f"always '{rows[0]['answer']}'")
        if reasons:
            flagged[participant] = reasons
    return flagged


def study_results(study_dir, exclude_flagged=False, min_response_ms=800):
    """Naturalness per model, counts, and the flagged participants."""
    manifest = load_manifest(study_dir)
    answers = AnswerStore(os.path.join(study_dir, "answers.sqlite")).all_answers()
    flagged = flag_participants(answers, min_response_ms)
    used = [a for a in answers if not (exclude_flagged and a["participant"] in flagged)]
    rows = []
    for model in manifest["models"]:
        mine = [a for a in used if a["model"] == model]
        real = sum(a["answer"] == "real" for a in mine)
        low, high = wilson_interval(real, len(mine))
        rows.append({
            "model": model,
            "answers": len(mine),
            "judged_real": real,
            "naturalness": real / len(mine) if mine else float("nan"),
            "ci_low": low,
            "ci_high": high,
            "participants": len({a["participant"] for a in mine}),
            "mean_response_ms": sum(a["response_ms"] for a in mine) / len(mine) if mine else float("nan"),
            "thesis": THESIS_TABLE_4.get(model, THESIS_TABLE_4.get("ground truth") if model == GROUND_TRUTH else None),
        })  # fmt: skip
    return {
        "rows": rows,
        "answers": len(used),
        "participants": len({a["participant"] for a in used}),
        "flagged": flagged,
        "excluded": sorted(flagged) if exclude_flagged else [],
    }


def write_results(study_dir, output_dir=None, exclude_flagged=False, min_response_ms=800):
    """Writes `results.md`, `results.csv` and `naturalness.png`; returns their paths and the results."""
    output_dir = output_dir or study_dir
    os.makedirs(output_dir, exist_ok=True)
    res = study_results(study_dir, exclude_flagged, min_response_ms)
    csv_path = os.path.join(output_dir, "results.csv")
    fields = ["model", "answers", "judged_real", "naturalness", "ci_low", "ci_high", "participants", "mean_response_ms"]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(res["rows"])
    lines = [
        f"# Naturalness study: {res['answers']} answers from {res['participants']} participants",
        "",
        "| model | naturalness | 95% CI (Wilson) | judged real / answers | participants | mean response (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['model']} | {r['naturalness']:.2f} | [{r['ci_low']:.2f}, {r['ci_high']:.2f}] | "
            f"{r['judged_real']} / {r['answers']} | {r['participants']} | {r['mean_response_ms']:.0f} |"
        )
    lines += ["", "Thesis Table 4 (share judged real): "
              + ", ".join(f"{k} {v:.2f}" for k, v in THESIS_TABLE_4.items())]  # fmt: skip
    if res["flagged"]:
        lines += [
            "",
            f"Flagged participants ({'excluded' if exclude_flagged else 'kept; --exclude-flagged drops them'}):",
        ]
        lines += [f"- {p[:8]}…: {'; '.join(reasons)}" for p, reasons in sorted(res["flagged"].items())]
    md_path = os.path.join(output_dir, "results.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(1.6 * len(res["rows"]) + 3, 4.5))
    names = [r["model"] for r in res["rows"]]
    values = [r["naturalness"] for r in res["rows"]]
    errors = [[max(0.0, v - r["ci_low"]) for v, r in zip(values, res["rows"])],
              [max(0.0, r["ci_high"] - v) for v, r in zip(values, res["rows"])]]  # fmt: skip
    ax.bar(names, values, yerr=errors, capsize=6, color="#4c72b0", label="this study (95% Wilson CI)")
    thesis = [THESIS_TABLE_4.get(n) for n in names]
    if any(t is not None for t in thesis):
        ax.scatter([n for n, t in zip(names, thesis) if t is not None], [t for t in thesis if t is not None],
                   color="#dd8452", marker="D", s=60, zorder=3, label="thesis Table 4")  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share judged a real photograph")
    people = "participant" if res["participants"] == 1 else "participants"
    ax.set_title(f"Naturalness: {res['answers']} answers, {res['participants']} {people}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=9, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    png_path = os.path.join(output_dir, "naturalness.png")
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return {"markdown": md_path, "csv": csv_path, "figure": png_path, "results": res}
