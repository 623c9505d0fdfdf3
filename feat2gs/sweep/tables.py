"""Scene-mean tables as in the paper: rows = features, column groups = modes × (PSNR↑, SSIM↑, LPIPS↓).

Ranks, colours and precision follow ``paper/table.py``: per column, best-to-worst rank r (0-based, ties share
the better rank), colour green #90c060 -> yellow #fff0d0 (r/(n-1) <= 0.5) -> red #ffd0d0; PSNR 2 decimals,
SSIM/LPIPS 4 (leading 0 stripped). The best value per column is bold. A cell whose group lacks scenes is
marked ``*`` and footnoted with its scene count; a cell whose jobs scored only some of their test views is
marked ``‡``. Tables of jobs that must not be ranked (random weights) are built with ``ranked=False``: no ranks,
no bold, no colours, every cell marked ``†``.

The same tables hold the 3D metrics (``Acc``/``Comp``/``Dist`` ×1000, 3 decimals, as the paper) and the pose
accuracy (``ATE``, ``RPE_trans``, ``RPE_rot``), all lower-is-better; ``<metric>_initial`` columns (the step-1
values) take their metric's direction and precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feat2gs.sweep.collect import MODE_NAMES, display_name

METRICS = ("PSNR", "SSIM", "LPIPS")
METRICS_3D = ("Acc", "Comp", "Dist")  # ×1000, as the paper
POSE_METRICS = ("ATE", "RPE_trans", "RPE_rot")
MET3R_METRICS = ("MET3R",)  # mean over consecutive frame pairs of the trajectory videos, lower = more consistent
HIGHER_IS_BETTER = {"PSNR": True, "SSIM": True, "LPIPS": False, "Acc": False, "Acc_med": False, "Comp": False,
                    "Comp_med": False, "Dist": False, "Dist_med": False, "ATE": False, "RPE_trans": False,
                    "RPE_rot": False, "MET3R": False}
DECIMALS = {"PSNR": 2, "SSIM": 4, "LPIPS": 4, "Acc": 3, "Acc_med": 3, "Comp": 3, "Comp_med": 3, "Dist": 3,
            "Dist_med": 3, "ATE": 4, "RPE_trans": 4, "RPE_rot": 3, "MET3R": 4}
STRIP_ZERO = ("SSIM", "LPIPS")  # printed without the leading 0 (".7450"), as the paper
ARROWS = {True: "↑", False: "↓"}
GREEN, YELLOW, RED = (0x90, 0xC0, 0x60), (0xFF, 0xF0, 0xD0), (0xFF, 0xD0, 0xD0)


def base_metric(metric: str) -> str:
    """``PSNR_masked`` -> ``PSNR``, ``ATE_initial`` -> ``ATE``: the metric whose direction and precision apply."""
    for suffix in ("_masked", "_initial"):
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


@dataclass
class Cell:
    mean: float | None  # mean over the scenes present (None: no scene has a value)
    n: int  # scenes with a value
    expected: int  # scenes the group should have
    random_weights: bool = False
    partial: bool = False  # some job of the group scored only part of its test views

    @property
    def incomplete(self) -> bool:
        return self.n < self.expected


def format_value(value: float, metric: str, strip_zero: bool = True) -> str:
    text = f"{value:.{DECIMALS[base_metric(metric)]}f}"
    if strip_zero and base_metric(metric) in STRIP_ZERO:
        text = text.replace("0.", ".", 1) if text.startswith("0.") else text.replace("-0.", "-.", 1)
    return text


def rank_colour(r: float) -> tuple[float, float, float]:
    """r in [0, 1] (0 = best) -> RGB in [0, 1], as paper/table.py."""
    a, b, t = (GREEN, YELLOW, r / 0.5) if r <= 0.5 else (YELLOW, RED, (r - 0.5) / 0.5)
    return tuple((a[i] + (b[i] - a[i]) * t) / 255.0 for i in range(3))


@dataclass
class Table:
    title: str
    features: list[str]
    modes: list[str]
    metrics: tuple[str, ...]
    cells: dict[tuple[str, str, str], Cell]  # (feature, mode, metric)
    ranked: bool = True  # False: values only (random-weight jobs are never ranked, bolded or coloured)
    ranks: dict[tuple[str, str, str], int] = field(default_factory=dict)  # 1 = best
    n_ranked: dict[tuple[str, str], int] = field(default_factory=dict)  # (mode, metric) -> ranked features

    def __post_init__(self) -> None:
        if not self.ranked:
            return
        for mode in self.modes:
            for metric in self.metrics:
                shown = {f: round(c.mean, DECIMALS[base_metric(metric)]) for f in self.features
                         if (c := self.cells.get((f, mode, metric))) is not None and c.mean is not None}
                sign = 1 if HIGHER_IS_BETTER[base_metric(metric)] else -1
                for f, v in shown.items():
                    self.ranks[(f, mode, metric)] = 1 + sum(1 for w in shown.values() if sign * w > sign * v)
                self.n_ranked[(mode, metric)] = len(shown)

    def cell(self, feature: str, mode: str, metric: str) -> Cell | None:
        c = self.cells.get((feature, mode, metric))
        return c if c is not None and c.mean is not None else None

    def mean_rank(self, feature: str, modes: list[str] | None = None) -> float | None:
        ranks = [self.ranks[(feature, m, k)] for m in (modes or self.modes) for k in self.metrics
                 if (feature, m, k) in self.ranks]
        return sum(ranks) / len(ranks) if ranks else None

    def colour(self, feature: str, mode: str, metric: str) -> tuple[float, float, float] | None:
        if (feature, mode, metric) not in self.ranks:
            return None
        n = self.n_ranked[(mode, metric)]
        return rank_colour(0.0 if n <= 1 else (self.ranks[(feature, mode, metric)] - 1) / (n - 1))

    def footnotes(self) -> list[str]:
        """One line per (feature, mode) with an incomplete or random-weight cell."""
        lines = []
        for f in self.features:
            for m in self.modes:
                cells = {k: c for k in self.metrics if (c := self.cells.get((f, m, k))) is not None}
                if not cells:
                    continue
                counts = {(c.n, c.expected) for c in cells.values()}
                notes = []
                if any(c.incomplete for c in cells.values()):
                    if len(counts) == 1:
                        n, expected = next(iter(counts))
                        notes.append(f"{n}/{expected} scenes")
                    else:
                        notes.append(", ".join(f"{k} {c.n}/{c.expected} scenes" for k, c in cells.items()))
                if any(c.partial for c in cells.values()):
                    notes.append("some test views not scored")
                if any(c.random_weights for c in cells.values()):
                    notes.append("random weights")
                if notes:
                    lines.append(f"{display_name(f)} {m}: {'; '.join(notes)}")
        return lines

    def _marks(self, c: Cell) -> str:
        return ("*" if c.incomplete else "") + ("‡" if c.partial else "") + ("†" if c.random_weights else "")

    # Markdown ----------------------------------------------------------------------------------------
    def to_markdown(self) -> str:
        multi = len(self.modes) > 1
        head = ["Feature"]
        for m in self.modes:
            head += [f"{m} {k}{ARROWS[HIGHER_IS_BETTER[base_metric(k)]]}" for k in self.metrics]
            head += [f"{m} rank"] if self.ranked else []
        if multi and self.ranked:
            head.append("Mean rank")
        lines = [f"### {self.title}", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" + "---:|" * (len(head) - 1)]
        for f in self.features:
            row = [display_name(f)]
            for m in self.modes:
                for k in self.metrics:
                    c = self.cell(f, m, k)
                    if c is None:
                        row.append("–")
                        continue
                    text = format_value(c.mean, k)
                    text = f"**{text}**" if self.ranks.get((f, m, k)) == 1 else text
                    row.append(text + self._marks(c).replace("*", "\\*"))
                if self.ranked:
                    mr = self.mean_rank(f, [m])
                    row.append("–" if mr is None else f"{mr:.1f}")
            if multi and self.ranked:
                mr = self.mean_rank(f)
                row.append("–" if mr is None else f"{mr:.1f}")
            lines.append("| " + " | ".join(row) + " |")
        notes = self.footnotes()
        if notes:
            lines += ["", "\\* mean over the scenes present (group incomplete); ‡ some test views could not be "
                      "scored (means over the others); † random-weight jobs (never ranked):", ""]
            lines += [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"

    # LaTeX -------------------------------------------------------------------------------------------
    def to_latex(self) -> str:
        """A ``tabular`` (needs ``\\usepackage[table]{xcolor}``), cells coloured by rank, best in bold."""
        width = len(self.metrics) + (1 if self.ranked else 0)
        multi = len(self.modes) > 1 and self.ranked
        spec = "l" + "".join("|" + "r" * width for _ in self.modes) + ("|r" if multi else "")
        ncols = 1 + width * len(self.modes) + (1 if multi else 0)
        out = [f"% {self.title}", "% requires \\usepackage[table]{xcolor}", f"\\begin{{tabular}}{{{spec}}}", "\\hline"]
        groups = [f"\\multicolumn{{{width}}}{{c|}}{{{_tex(MODE_NAMES.get(m, m))}}}" for m in self.modes]
        if len(self.modes) == 1 or not self.ranked:
            groups[-1] = groups[-1].replace("{c|}", "{c}")
        out.append(" & ".join([""] + groups + (["" ] if multi else [])) + " \\\\")
        sub = ["Feature"]
        for _ in self.modes:
            sub += [f"{_tex(k)}$\\{'uparrow' if HIGHER_IS_BETTER[base_metric(k)] else 'downarrow'}$"
                    for k in self.metrics] + (["Rank"] if self.ranked else [])
        if multi:
            sub.append("Mean rank")
        out += [" & ".join(sub) + " \\\\", "\\hline"]
        for f in self.features:
            row = [_tex(display_name(f))]
            for m in self.modes:
                for k in self.metrics:
                    c = self.cell(f, m, k)
                    if c is None:
                        row.append("--")
                        continue
                    text = format_value(c.mean, k)
                    if self.ranks.get((f, m, k)) == 1:
                        text = f"\\textbf{{{text}}}"
                    marks = self._marks(c).replace("†", "\\dagger").replace("‡", "\\ddagger")
                    if marks:
                        text += f"$^{{{marks}}}$"
                    rgb = self.colour(f, m, k)
                    row.append(text if rgb is None else
                               f"\\cellcolor[rgb]{{{rgb[0]:.3f},{rgb[1]:.3f},{rgb[2]:.3f}}}{text}")
                if self.ranked:
                    mr = self.mean_rank(f, [m])
                    row.append("--" if mr is None else f"{mr:.1f}")
            if multi:
                mr = self.mean_rank(f)
                row.append("--" if mr is None else f"{mr:.1f}")
            out.append(" & ".join(row) + " \\\\")
        out.append("\\hline")
        notes = self.footnotes()
        if notes:
            text = ("$^{*}$ mean over the scenes present; $^{\\ddagger}$ some test views not scored; $^{\\dagger}$ "
                    "random weights, not ranked. ") + "; ".join(
                _tex(n) for n in notes)
            out.append(f"\\multicolumn{{{ncols}}}{{l}}{{\\footnotesize {text}}} \\\\")
        out.append("\\end{tabular}")
        return "\n".join(out) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("&", "\\&"), ("%", "\\%"), ("#", "\\#"),
                 ("$", "\\$"), ("{", "\\{"), ("}", "\\}")):
        if a == "\\":
            text = text.replace(a, "\0")
        else:
            text = text.replace(a, b)
    return text.replace("\0", "\\textbackslash{}")
