"""Heat maps of a friendliness table: positions across, choices (cheapest first) down.

Left: latency contribution (ms over the position's baseline, with its 95 % interval). Right:
friendliness (accuracy share / latency share; colour on a log scale centred on 1, the
space's average rate), or the latency share when there are no accuracies. Dropped choices
are crossed out. matplotlib's Agg backend, files only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .friendliness import Friendliness


def _grid(table: Friendliness):
    """Per position its rows sorted by latency; the grid height (most choices)."""
    cols = [sorted(rs, key=lambda r: r.latency_ms) for rs in table.by_position().values()]
    return cols, max(len(c) for c in cols)


def heatmap(table: Friendliness, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cols, k = _grid(table)
    n = len(cols)
    lat = np.full((k, n), np.nan)
    fr = np.full((k, n), np.nan)
    for x, rs in enumerate(cols):
        for y, r in enumerate(rs):
            lat[y, x] = r.latency_ms
            if r.friendliness is not None:
                fr[y, x] = r.friendliness
    has_acc = np.isfinite(fr).any()
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 1.35 * n + 3), 1.0 * k + 2.6))
    ax = axes[0]
    im = ax.imshow(lat, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax, label="latency over the baseline (ms)")
    for x, rs in enumerate(cols):
        for y, r in enumerate(rs):
            ax.text(x, y, f"{r.choice}\n{r.latency_ms:.2f}±{r.latency_ci_ms:.2f}", ha="center", va="center",
                    fontsize=6, color="white" if r.latency_ms < np.nanmax(lat) / 2 else "black")
    ax.set_title("latency contribution (95% CI)", fontsize=9)
    ax2 = axes[1]
    if has_acc:
        pos = np.where(fr > 0, fr, np.nan)
        lo, hi = np.nanmin(pos) if np.isfinite(pos).any() else 0.1, np.nanmax(pos) if np.isfinite(pos).any() else 10
        span = max(abs(np.log10(lo)), abs(np.log10(hi)), 0.3)
        im2 = ax2.imshow(np.clip(pos, 10 ** -span, 10 ** span), cmap="RdYlGn", aspect="auto",
                         norm=LogNorm(10 ** -span, 10 ** span))
        fig.colorbar(im2, ax=ax2, label="friendliness (1 = the space's average rate)")
        ax2.set_title("friendliness = accuracy share / latency share (x: dropped)", fontsize=9)
    else:
        im2 = ax2.imshow(lat / max(table.latency_range_ms, 1e-12), cmap="viridis", aspect="auto")
        fig.colorbar(im2, ax=ax2, label="latency share")
        ax2.set_title("latency share (no accuracies: no friendliness)", fontsize=9)
    for x, rs in enumerate(cols):
        for y, r in enumerate(rs):
            if r.baseline:
                txt = f"{r.choice}\nbase"
            elif r.friendliness is not None:
                txt = f"{r.choice}\nF {r.friendliness:.2f}\nA {100 * r.accuracy_share:.0f}% L {100 * r.latency_share:.0f}%"
            else:
                txt = f"{r.choice}\nL {100 * r.latency_share:.0f}%"
            ax2.text(x, y, txt, ha="center", va="center", fontsize=6)
            if not r.kept:
                ax2.plot([x - 0.45, x + 0.45], [y - 0.45, y + 0.45], color="black", lw=1.2)
                ax2.plot([x - 0.45, x + 0.45], [y + 0.45, y - 0.45], color="black", lw=1.2)
    labels = list(table.by_position())
    for a in axes:
        a.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7)
        a.set_yticks(range(k), [f"#{i + 1}" for i in range(k)], fontsize=7)
        a.set_ylabel("choices, cheapest first", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
