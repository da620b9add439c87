"""Rich output shared by the commands: the consoles, progress bars, result renderers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

# columns, so result tables are not squeezed into ellipses.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


class _RichHandle:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._p, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self._p.advance(self._id, n)

    def update(self, **fields: Any) -> None:
        text = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self._p.update(self._id, info=text)


class _PlainHandle:
    """Progress as whole lines (a log, CI, a pipe): a bar redrawn in place comes out there cut
    to the width of nothing (``320/3…``). A line every 10 % or 30 s, and one at the end."""

    def __init__(self, console: Console, description: str, total: float | None, unit: str) -> None:
        import time

        self._c, self._desc, self._total, self._unit = console, description, total, unit
        self._n = 0.0
        self._t0 = self._last_t = time.monotonic()
        self._last_frac = 0.0
        self._info = ""
        self._printed = -1.0  # the count of the last line printed

    def _line(self) -> str:
        import time

        dt = max(time.monotonic() - self._t0, 1e-9)
        done = (
            f"{self._n:,.0f}/{self._total:,.0f} ({100 * self._n / self._total:.0f} %)"
            if self._total
            else f"{self._n:,.0f}"
        )
        return f"{self._desc}: {done} {self._unit}, {self._n / dt:,.1f} {self._unit}/s, {dt:.0f} s" + (
            f"  {self._info}" if self._info else ""
        )

    def advance(self, n: float = 1) -> None:
        import time

        self._n += n
        now = time.monotonic()
        frac = self._n / self._total if self._total else 0.0
        if frac - self._last_frac >= 0.1 or now - self._last_t >= 30:
            self._last_frac, self._last_t, self._printed = frac, now, self._n
            self._c.print(self._line(), highlight=False, soft_wrap=True)

    def update(self, **fields: Any) -> None:
        self._info = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )

    def close(self) -> None:
        if self._printed != self._n:  # the last line is not already the final count
            self._c.print(self._line(), highlight=False, soft_wrap=True)


class RichProgress:
    """The library's Progress protocol drawn with rich bars (with rates) on stderr; plain
    progress lines instead when stderr is not a terminal (logs, CI, pipes)."""

    def __init__(self, console: Console = err, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    @contextmanager
    def task(self, description: str, total: float | None = None, unit: str = "it") -> Iterator[Any]:
        if not self.quiet and not self.console.is_terminal:
            plain = _PlainHandle(self.console, description, total, unit)
            yield plain
            plain.close()
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        if unit == "B":  # downloads: sizes and speeds in kB/MB/GB, not raw byte counts
            columns = [
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            ]
        with Progress(*columns, console=self.console, disable=self.quiet, transient=False) as p:
            tid = p.add_task(description, total=total, info="", rate="")
            handle = _RichHandle(p, tid)
            orig = handle.advance

            def advance(n: float = 1) -> None:
                orig(n)
                speed = p.tasks[0].speed
                if speed:
                    p.update(tid, rate=f"{speed:,.1f} {unit}/s")

            handle.advance = advance  # type: ignore[method-assign]
            yield handle

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)


def report_skipped(pairs: Any) -> None:
    """Print the (row, why) pairs of unreadable images a catalog or a build skipped (20 at most)."""
    skipped = dict(pairs)  # a row may be met more than once
    if not skipped:
        return
    out.print(f"[yellow]skipped {len(skipped)} unreadable images:[/]")
    for why in list(skipped.values())[:20]:
        out.print(f"  {why}", highlight=False)
    if len(skipped) > 20:
        out.print(f"  … and {len(skipped) - 20} more")


def render_train(res: Any) -> None:
    # None: the validation set is smaller than that batch size, so it was not measured
    acc = ", ".join(
        f"batch {b}: " + ("— (fewer validation images)" if v is None else f"{v:.3f}")
        for b, v in res.best_val_loose_acc.items()
    )
    out.print(
        f"run [bold]{res.out_dir}[/]: best epoch {res.best_epoch}/{res.epochs_completed} ({res.stopped}), "
        f"val loss {res.best_val_loss:.4f}, val loose accuracy {acc}; "
        f"{res.n_train} train / {res.n_val} val images, {res.seconds:.0f} s on {res.device}"
    )
    if res.score_weights is not None:
        w = res.score_weights
        out.print(f"learned score weights: cos {w['cos']:.3f}, L2 {w['l2']:.3f}, L3 {w['l3']:.3f}")
    out.print(f"history: {Path(res.out_dir) / 'history.json'} and {Path(res.out_dir) / 'history.png'}")


def render_eval(rep: Any) -> None:
    methods = list(rep.loose_accuracy)
    t = Table(
        title=f"evaluation on the {rep.split} split: "
        f"{rep.n_queries} queries against {rep.n_database} objects",
        title_justify="left",
    )
    t.add_column("metric")
    for m in methods:
        t.add_column(m, justify="right")
    for b in rep.batch_sizes:
        t.add_row(f"loose accuracy @ batch {b}", *[_fmt(rep.loose_accuracy[m].get(b)) for m in methods])
    if rep.retrieval:
        names = list(next(iter(rep.retrieval.values())).macro)
        for name in names:
            t.add_row(
                f"macro {name}",
                *[_fmt(rep.retrieval[m].macro.get(name)) if m in rep.retrieval else "—" for m in methods],
            )
    out.print(t)
    best = rep.best_baseline()
    if best is not None and "model" in rep.retrieval:
        m, b = rep.retrieval["model"].macro.get("precision@10"), rep.retrieval[best].macro.get("precision@10")
        if m is not None and b is not None:
            out.print(
                f"macro precision@10: model {m:.3f}, best baseline {best} {b:.3f} ({m - b:+.3f})",
                highlight=False,
            )
    if rep.framing and rep.framing.get("spec", "none") != "none":
        fr = rep.framing
        out.print(
            (
                f"framing {fr['spec']}: {fr['fallback']} of {fr['images']} images had no central source "
                f"(whole frame kept)"
            ),
            highlight=False,
        )
    if rep.retrieval and "model" in rep.retrieval:
        pc = rep.retrieval["model"].per_class
        key = next((k for k in ("precision@10", "precision@1") if pc and k in next(iter(pc.values()))), None)
        names = rep.label_names or {}
        if key:
            row = "  ".join(f"{names.get(c, c)}: {v[key]:.2f}" for c, v in pc.items())
            out.print(f"per-class {key} (model): {row}", highlight=False)


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"
