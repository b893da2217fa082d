"""Dashboard: per-run scores over attempted and finished questions, EM by model and method, prompted versus
fine-tuned, clean versus perturbed search, cost and steps, paired comparisons and lineage. Every bar and
table cell opens Browse on the trajectories behind it."""

from __future__ import annotations

import streamlit as st

from fireact_core.reports import charts as charts, lineage as lineage, figures as reports
from fireact_core import names
from fireact_core.errors import FireactError
from fireact_core.filters import TrajectoryFilter
from ui import annotator, page_setup, show_error
from ui_dashboard import chart, table
from ui_team import agreement_section

store = page_setup("Dashboard", ":material/dashboard:")
st.title("Evaluation dashboard")


def show_runs(data) -> None:
    runs = data.runs
    st.caption("EM and F1 over **attempted** count missing and unfinished questions as wrong; over **finished** "
               "they score only the questions that ended with an answer. Click a cell to open its trajectories.")
    shown = reports.runs_view(runs)
    table(shown, "runs", "runs_table", drill=lambda r, c: charts.run_cell_filter(shown.iloc[r]["full name"], c))
    for key in ("task", "method", "model"):
        st.markdown(f"**By {key}**")
        by = reports.group_metrics(runs, [key])
        if key == "model":
            by = by.assign(model=[names.display_model(m) if m != "unknown" else m for m in by["model"]])
        table(by.drop(columns="sources"), f"by_{key}", f"by_{key}",
              drill=lambda r, c, by=by: TrajectoryFilter(source=by.iloc[r]["sources"]))


def show_models(data) -> None:
    st.subheader("EM by model and method")
    st.caption("EM over attempted questions, a model per row and a method per column, as in FireAct's tables. "
               "Click a cell to open its trajectories.")
    grid, cells = reports.model_method_table(data.runs, data.registry)
    if not grid.empty:
        table(grid, "em_model_x_method", "model_method_table", hide_index=False,
              drill=lambda r, c: TrajectoryFilter(source=cells.get((grid.index[r], c), [])))
    by = reports.em_by_model_method(data.runs)
    if not by.empty:
        chart(charts.em_by_model_method(by), "em_by_model_method", "chart_model_method")
    st.subheader("Prompted versus fine-tuned")
    pf = reports.prompted_vs_finetuned(data.runs, data.registry)
    if pf.empty:
        st.info("No fine-tuned model with a run here: models come from the Train page's registry "
                "(or OpenAI `ft:` names, or runs made in fine-tuned mode).")
        return
    chart(charts.prompted_vs_finetuned(pf), "prompted_vs_finetuned", "chart_variants")
    table(pf.drop(columns="sources"), "prompted_vs_finetuned", "variants_table",
          drill=lambda r, c: TrajectoryFilter(source=pf.iloc[r]["sources"]))


def show_robustness(data) -> None:
    rob = reports.robustness(store, data.runs)
    if rob.empty:
        st.info("No perturbed run beside a clean run of the same task, model and method. Runs made with "
                "perturbation ('none' or 'random' observations) on the Generate page show here.")
        return
    st.caption("diff, ci_low, ci_high: clean minus perturbed EM on the questions both runs answered, with a "
               "paired bootstrap interval; p_value: McNemar's exact test.")
    chart(charts.robustness(rob), "clean_vs_perturbed", "chart_robust")
    table(rob, "clean_vs_perturbed", "robust_table",
          drill=lambda r, c: TrajectoryFilter(source=[rob.iloc[r]["clean_run"], rob.iloc[r]["perturbed_run"]]))


def show_cost(data) -> None:
    fig = charts.cost_vs_em(data.runs)
    if fig is None:
        st.info("No tokens or cost recorded for these runs (FireAct's files carry none; generated runs do).")
    chart(fig, "cost_vs_em", "chart_cost")
    steps = reports.steps_distribution(store, list(data.runs["run"]))
    chart(charts.steps_distribution(steps), "steps_distribution", "chart_steps")


def show_compare(data) -> None:
    scored = reports.scored_runs(data.runs)
    if len(scored) < 2:
        st.info("Two scored runs are needed for a paired comparison.")
        return
    c1, c2 = st.columns(2)
    short = names.display_names(scored)
    run_a = c1.selectbox("Run A", scored, index=0, key="cmp_a", format_func=short.get)
    run_b = c2.selectbox("Run B", scored, index=1, key="cmp_b", format_func=short.get)
    cmp = reports.compare_runs(store, run_a, run_b)
    m = st.columns(4)
    m[0].metric("Shared questions", cmp.n, help=f"only in A: {cmp.only_in_a}, only in B: {cmp.only_in_b}, "
                                                   f"unscored in one of them: {cmp.unscored}")
    m[1].metric("EM A", "-" if cmp.em_a is None else f"{cmp.em_a:.3f}")
    m[2].metric("EM B", "-" if cmp.em_b is None else f"{cmp.em_b:.3f}")
    m[3].metric("McNemar p", "-" if cmp.p_value is None else f"{cmp.p_value:.3g}")
    (st.success if cmp.significant else st.warning)(cmp.verdict())
    ct = reports.contingency_table(cmp)
    table(ct, "contingency", "cmp_table", hide_index=False,
          drill=lambda r, c: charts.contingency_filter(cmp, ct.index[r], c))


def show_lineage(data) -> None:
    choices = reports.lineage_choices(data.runs, data.registry)
    short = names.display_names(choices)
    pick = st.selectbox("Run", choices, key="lineage_run", help="runs of fine-tuned models first", format_func=short.get)
    lin = lineage.run_lineage(store, data.runs, pick, data.registry)
    st.markdown(f"**Model** `{lin.model}` · {lin.variant} · base `{lin.base_model}`")
    for note in lin.notes:
        st.info(note)
    for col, title, rec in zip(st.columns(3), ("Model", "Dataset version", "Training job"),
                               (lin.model_record, lin.dataset, lin.job)):
        col.markdown(f"**{title}**")
        if rec:
            col.json(rec if isinstance(rec, dict) else rec.model_dump(mode="json"), expanded=False)
        else:
            col.caption("none recorded")
    if lin.curve is not None:
        chart(charts.training_curve(lin.curve), "training_curve", "chart_curve")
    st.markdown("**Runs of the same base model on this task**")
    side = lin.side_by_side
    table(side, "lineage", "lineage_table", drill=lambda r, c: TrajectoryFilter(source=[side.iloc[r]["run"]]))
    if lin.data_kind and not lin.against_parent.empty:
        st.markdown(f"**Trained on {lin.data_kind}: against the models of the parent version `{lin.parent_dataset}`**"
                    " (same task, the questions both answered; diff is this run's EM minus theirs)")
        vs = lin.against_parent
        table(vs, "lineage_vs_parent", "lineage_parent_table",
              drill=lambda r, c: TrajectoryFilter(source=[vs.iloc[r]["run"], vs.iloc[r]["parent_run"]]))


def main() -> None:
    runs = store.report_run_names()
    if not runs:
        st.info("No runs yet: import FireAct run files on the home page (or `fireact import FILE`), "
                "or make one on the Generate page.")
        st.stop()
    with st.sidebar:
        short = names.display_names(runs)
        chosen = st.multiselect("Runs", runs, key="dash_runs", placeholder="all runs", format_func=short.get)
        scored_only = st.toggle("Only scored runs", value=True, key="dash_scored",
                                help="hide imported training sets that have no gold answers")
    data = reports.dashboard_runs(store, chosen or None, scored_only=scored_only)
    if data.runs.empty:
        st.info("None of the chosen sources has scored trajectories: untick 'Only scored runs' in the sidebar.")
        st.stop()
    # Only the open tab's content runs (and queries the store).
    tabs = st.tabs(list(SECTIONS), key="dash_tab", on_change="rerun")
    for tab, show in zip(tabs, SECTIONS.values()):
        if tab.open:
            with tab:
                show(data)


SECTIONS = {"Runs": show_runs, "Models & methods": show_models, "Robustness": show_robustness,
            "Cost & steps": show_cost, "Compare runs": show_compare, "Lineage": show_lineage,
            "Team": lambda _data: agreement_section(store, annotator())}

try:
    with store.session():
        main()
except FireactError as exc:
    show_error(exc)
