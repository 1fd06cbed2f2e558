"""The Compare tab: pick targets and a prompt profile, watch the answers stream side by side,
then read the table, the plots and download CSV / JSON / Markdown."""

from __future__ import annotations

import threading

import gradio as gr
import pandas as pd

from webapp.bench.engine import BenchConfig, Hooks
from webapp.bench.prompts import PROFILES
from webapp.bench.service import BenchService
from webapp.errors import UserError
from webapp.ui.safe_markdown import warning

MAX_PANES = 4
RESULT_OUTPUTS = 6  # table, two bar plots, throughput plot, TTFT scatter, downloads


def plots(report):
    """Data for the plots: one bar chart per metric, throughput per number of users, TTFT vs prompt
    length. Bars, not lines: they read the same with one target or one number of users (a line
    needs two points), and each bar is one measured value."""
    bars, sweep, scatter = [], [], []
    several = len(report.results) > 1
    for r in report.results:
        s = r.summary()
        if s.get("ttft_ms") is not None:
            bars.append(
                {"target": r.label, "TTFT ms": round(s["ttft_ms"], 1), "decode tok/s": round(s["decode_tok_s"] or 0, 1)}
            )
        for p in r.sweep:
            # one bar per (users, target); the users first, so bars of one load stand together
            load = f"{p.users} user{'s' if p.users > 1 else ''}" + (f" · {r.label}" if several else "")
            sweep.append(
                {"load": load, "target": r.label, "users": p.users, "aggregate tok/s": round(p.aggregate_tok_s, 1)}
            )
        for run in r.runs:
            scatter.append({"target": r.label, "prompt tokens": run.prompt_tokens, "TTFT ms": round(run.ttft_s * 1000)})
    return pd.DataFrame(bars), pd.DataFrame(sweep), pd.DataFrame(scatter)


class CompareTab:
    def __init__(self, bench: BenchService, auth):
        self.bench = bench
        self.auth = auth

    def render(self) -> None:
        if not self.bench.enabled:
            gr.Markdown(
                "Benchmarks are turned off on this server: they load extra model copies and take every "
                "core from the chats. An operator can enable them with `DOCCHAT_ENABLE_BENCH=true` "
                "(or run `python -m webapp bench` on another machine).",
                elem_id="compare-disabled",
            )
            return
        targets = self.bench.targets()
        default = [t.id for t in targets if t.backend == "openvino"][:2]
        gr.Markdown(
            "Measure time to first token, time per token and throughput of models and backends "
            "on this machine, side by side. Every run uses a different prompt (no cache effects).\n\n"
            "**TTFT** (time to first token): how long a user waits before the answer starts - mostly "
            "reading the prompt. **TPOT** (time per output token): the pause between words once it "
            "writes; 1000 / TPOT is the **decode tok/s** one user sees. **Aggregate tok/s**: tokens per "
            "second across all users at once (what the server delivers under load). Lower TTFT and TPOT "
            "are better; higher tok/s is better.",
            elem_id="compare-glossary",
        )
        with gr.Row():
            self.targets = gr.CheckboxGroup(
                [(t.label, t.id) for t in targets], value=default, label="Targets", elem_id="compare-targets", scale=3
            )
            with gr.Column(scale=2):
                profile = gr.Radio(
                    [(f"{k}: {v[0]}", k) for k, v in PROFILES.items()], value="chat", label="Prompt profile"
                )
                runs = gr.Slider(1, 10, value=3, step=1, label="Measured runs per target")
                max_new = gr.Slider(16, 256, value=64, step=16, label="New tokens per answer")
                users = gr.CheckboxGroup([1, 2, 4], value=[1, 2, 4], label="Concurrent users")
        with gr.Row():
            run = gr.Button("Run comparison", variant="primary", elem_id="compare-run")
            cancel = gr.Button("Cancel", variant="stop", elem_id="compare-cancel")
        status = gr.Markdown(elem_id="compare-status")
        with gr.Row():
            panes = [
                gr.Textbox(
                    label=f"answer {i + 1}", lines=6, max_lines=10, interactive=False, elem_id=f"compare-answer-{i}"
                )
                for i in range(MAX_PANES)
            ]
        # one row per measure, one column per target: it fits its column (and scrolls inside its own
        # box when many targets do not)
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="compare-table", label="Results per measure")
        # The value axes start at zero: a bar's length is its value, and a single bar is not flat.
        with gr.Row():
            bar = gr.BarPlot(
                x="target",
                y="TTFT ms",
                title="Time to first token (lower is better)",
                elem_id="compare-bar",
                x_label_angle=-20,
                y_lim=[0, None],
                min_width=320,  # two per row on a wide screen, one under the other on a phone
            )
            bar2 = gr.BarPlot(
                x="target",
                y="decode tok/s",
                title="Decode speed (higher is better)",
                elem_id="compare-bar-decode",
                x_label_angle=-20,
                y_lim=[0, None],
                min_width=320,  # two per row on a wide screen, one under the other on a phone
            )
        with gr.Row():
            sweep = gr.BarPlot(
                x="load",
                y="aggregate tok/s",
                color="target",
                x_title="concurrent users",
                title="Throughput per number of users (higher is better)",
                elem_id="compare-sweep",
                x_label_angle=-20,
                y_lim=[0, None],
                min_width=320,  # two per row on a wide screen, one under the other on a phone
            )
            scatter = gr.ScatterPlot(
                x="prompt tokens",
                y="TTFT ms",
                color="target",
                title="TTFT vs prompt length",
                elem_id="compare-scatter",
                min_width=320,
            )
        files = gr.File(label="Download results", file_count="multiple", interactive=False, elem_id="compare-files")
        outputs = [status, *panes, table, bar, bar2, sweep, scatter, files]
        run_evt = run.click(self.run, [self.targets, profile, runs, max_new, users], outputs, concurrency_limit=1)
        cancel.click(self.cancel, None, [status], cancels=[run_evt], queue=False)

    def cancel(self, request: gr.Request):
        stopped = self.bench.cancel(request.session_hash if request else "")
        return "Cancelling… (the current request finishes first)" if stopped else "Nothing is running."

    def run(self, target_ids, profile, runs, max_new, users, request: gr.Request):
        session = request.session_hash if request else "cli"
        skip = [gr.skip()] * (MAX_PANES + RESULT_OUTPUTS)
        try:
            actor = self.auth.actor_of(request)
            actor.require_admin("run benchmarks")
        except UserError as exc:
            yield (warning(exc), *skip)
            return
        if not target_ids:
            yield ("⚠ Choose at least one target.", *skip)
            return
        labels = {t.id: t.label for t in self.bench.targets()}
        pane_of = {tid: i for i, tid in enumerate(target_ids[:MAX_PANES])}
        texts = {tid: "" for tid in target_ids}
        state = {"fraction": 0.0, "message": "starting", "report": None, "error": None}
        hooks = Hooks(
            progress=lambda f, m: state.update(fraction=f, message=m),
            on_text=lambda tid, text: texts.__setitem__(tid, text),
        )
        cfg = BenchConfig(
            profile=profile,
            runs=int(runs),
            warmup=1,
            max_new_tokens=int(max_new),
            users=tuple(sorted(int(u) for u in users)) or (1,),
        )

        def work():
            try:
                state["report"] = self.bench.run(list(target_ids), cfg, hooks, session, actor)
            except UserError as exc:
                state["error"] = warning(exc)

        worker = threading.Thread(target=work, name="compare", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.25)
                panes = [gr.skip()] * MAX_PANES
                for tid, i in pane_of.items():
                    panes[i] = gr.Textbox(value=texts[tid], label=labels.get(tid, tid))
                yield (
                    f"Running: {state['fraction']:.0%} · {state['message']}",
                    *panes,
                    *([gr.skip()] * RESULT_OUTPUTS),
                )
        finally:
            # The event ended without the worker: Cancel pressed, or the tab went away and Gradio
            # closed this generator. Nobody will read the results, so stop using the cores.
            if worker.is_alive():
                hooks.cancel.cancel()
        if state["error"]:
            yield (state["error"], *skip)
            return
        report = state["report"]
        failed = [r for r in report.results if r.status != "ok"]
        note = "; ".join(f"{r.label}: {r.status}{' - ' + r.error if r.error else ''}" for r in failed)
        bars, sweeps, scatter = plots(report)
        columns, rows = report.by_measure()
        table = pd.DataFrame(rows, columns=columns)
        yield (
            ("Done." if not failed else f"Done with problems: {note}"),
            *([gr.skip()] * MAX_PANES),
            table,
            bars,
            bars,
            sweeps,
            scatter,
            self.bench.export(report),
        )
