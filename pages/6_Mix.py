"""Mix: steer a fine-tuning set by task and method share, filter it, preview it live, save it as an immutable
version, and download its exports."""

from __future__ import annotations

import streamlit as st

from fireact_core.mixing.export import DATASET_FORMATS, export_dataset_bytes
from fireact_core.errors import FireactError
from fireact_core.mixing.view import (cells_frame, composition_html, example_html, form_spec, grid_cells, grid_frame,
                                   versions_frame)
from fireact_core.mixing.versions import CELL_SEP, MixSpec, plan_mix, save_mix, saved_spec
from fireact_core.curation.pairs import describe_pairs
import ui_mix
from ui import annotator, page_setup, panel_on_demand, plain_table, show_error

store = page_setup("Mix", ":material/tune:")
st.title("Mix")
st.caption("Choose how much of each task and method goes into a fine-tuning set. The preview follows every "
           "slider; saving makes a named version that later edits never change.")
sources = store.source_names()
if not sources:
    st.info("No trajectories yet: import FireAct files or load the demo data on the Home page, then mix them here.")
    st.stop()
ss = st.session_state


def load_version(name: str) -> None:
    """Put a saved version's spec into the widgets (a button callback, before the widgets exist)."""
    spec = saved_spec(store, name)
    ss.update({"mix_sources": spec.sources or sources, "mix_size": spec.size, "mix_val": spec.val_fraction,
               "mix_seed": spec.seed, "mix_mask": spec.loss_mask, "mix_upsample": spec.allow_upsample, "mix_pairs": spec.pairs,
               "mix_parent": name, "mix_mode": "grid" if spec.cells else "sliders"})
    ss.pop("mix_grid", None)
    for key in [k for k in ss if k.startswith(("mix_task_", "mix_method_"))]:
        ss[key] = 0
    for group, ratio in (("task", spec.task_ratio), ("method", spec.method_ratio)):
        for key, share in (ratio or {}).items():
            ss[f"mix_{group}_{key}"] = round(share * 100)
    f = spec.filters
    ss.update({"mix_correct": f.only_correct, "mix_accepted": f.only_accepted, "mix_rejected": f.exclude_rejected,
               "mix_dedupe": f.dedupe, "mix_keep": f.dedupe_keep, "mix_max_steps": f.max_steps or 0,
               "mix_eval": "eval_contamination" in f.exclude_lints,
               "mix_lints": [k for k in f.exclude_lints if k != "eval_contamination"], "mix_spec_cells": spec.cells,
               "mix_irregular": f.keep_irregular})


DEFAULTS = {"mix_sources": sources, "mix_mode": "sliders", "mix_size": 400, "mix_val": 0.1, "mix_seed": 1,
            "mix_pairs": None}
MAKE = {None: "trajectories (SFT)", "step": "step-level preference pairs",
        "trajectory": "trajectory-level preference pairs"}
for key, value in DEFAULTS.items():
    ss.setdefault(key, value)
ss["mix_sources"] = [s for s in ss["mix_sources"] if s in sources]
author = annotator()
with st.sidebar:
    chosen = st.multiselect("Sources", sources, key="mix_sources")
    counts = store.task_method_counts(chosen)
    mode = st.radio("Shares", ["sliders", "grid"], key="mix_mode", horizontal=True,
                    format_func={"sliders": "task and method sliders", "grid": "task x method grid"}.get)
    size = st.number_input("Total size", min_value=1, max_value=10_000_000, step=50, key="mix_size")
    split_panel = panel_on_demand("Split and output", "mix_split_open", icon=":material/call_split:",
                                  holds=("mix_val", "mix_seed", "mix_pairs"))
    st.caption(f"Split: {ss['mix_val']:.0%} validation, seed {ss['mix_seed']}; makes {MAKE[ss['mix_pairs']]}")
    if split_panel:
        with split_panel:
            st.slider("Validation share", 0.0, 0.9, step=0.05, key="mix_val", persist_state="page")
            st.number_input("Seed", step=1, key="mix_seed", persist_state="page")
            st.selectbox("Make", list(MAKE), key="mix_pairs", format_func=MAKE.get, persist_state="page",
                         help="pairs are built among the chosen trajectories: each edit against the imported "
                              "revision, each parent against its continuations (DPO and KTO read them)")
    val, seed, pairs = ss["mix_val"], ss["mix_seed"], ss["mix_pairs"]
    filters, mask, upsample, tokenizer = ui_mix.filters_and_training(pairs)

settings = {"sources": chosen, "mode": mode, "size": size, "val_fraction": val, "seed": seed, "filters": filters,
            "loss_mask": mask, "allow_upsample": upsample, "pairs": pairs}


@st.fragment
def mixer(counts: dict[str, int], settings: dict, tokenizer: str | None) -> MixSpec | None:
    """The shares and the preview they steer: moving a slider (or a grid cell, or the example shown) reruns this
    part alone, not the sidebar, the save form or the versions; None when the shares do not make a mix."""
    total = sum(counts.values()) or 1
    task_shares, method_shares, grid = {}, {}, {}
    if settings["mode"] == "sliders":
        for column, title, axis, shares in zip(st.columns(2), ("Task", "Method"), (0, 1),
                                               (task_shares, method_shares)):
            with column:
                st.markdown(f"**{title} shares**")
                for name in sorted({c.split(CELL_SEP)[axis] for c in counts}):
                    n = sum(v for c, v in counts.items() if c.split(CELL_SEP)[axis] == name)
                    key = f"mix_{title.lower()}_{name}"
                    ss.setdefault(key, max(1, round(100 * n / total)))
                    shares[name] = st.slider(f"{name} ({n} trajectories)", 0, 100, key=key)
    else:
        loaded = ss.get("mix_spec_cells")
        base = MixSpec(size=1, cells=loaded) if loaded else None
        st.markdown("**Share of each task x method cell (%)**")
        grid = grid_cells(st.data_editor(grid_frame(counts, base), key="mix_grid", width="stretch"))
    try:
        spec = form_spec(task_shares=task_shares, method_shares=method_shares, grid=grid, **settings)
        plan = plan_mix(store, spec, tokenizer)
    except FireactError as exc:
        show_error(exc)
        return None

    st.subheader("Preview")
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Asked", int(plan.cells["asked"].sum()))
    c2.metric("Got", plan.size, delta=plan.size - int(plan.cells["asked"].sum()) or None)
    c3.metric("Train / val",
              f"{int((plan.members['split'] == 'train').sum())} / {int((plan.members['split'] == 'val').sum())}")
    c4.metric("Tokens", f"{int(plan.cells['tokens'].sum()):,}")
    c5.metric("Carrying loss", f"{int(plan.cells['trained_tokens'].sum()):,}")
    st.markdown("**Composition** (got of asked): " + " · ".join(
        f"{r.cell} {r.got} of {r.asked}" for r in plan.cells.itertuples()))
    st.caption("Filters: " + ", ".join(f"{k} {v}" for k, v in plan.funnel.items()) + f" · tokens: {plan.token_label}")
    for msg in plan.messages:
        st.warning(msg)
    plain_table(cells_frame(plan))
    st.html(composition_html(plan))

    if plan.size:
        example = panel_on_demand("Which tokens carry loss: one example", "mix_example_open",
                                  icon=":material/format_color_text:")
        if example:
            with example:
                pos = st.number_input("Member", 0, plan.size - 1, 0, key="mix_example")
                try:
                    caption, html_text = example_html(store, plan, int(pos), tokenizer)
                    st.caption(caption)
                    st.html(html_text)
                except FireactError as exc:
                    show_error(exc)
    return spec


spec = mixer(counts, settings, tokenizer)
if spec is None:
    st.stop()

st.subheader("Save as a version")
with st.form("mix_save_form"):
    name = st.text_input("Name", key="mix_name", placeholder="e.g. multitask-react-cot-v1")
    parent = ss.get("mix_parent")
    note = st.text_input("Note", key="mix_note") or None
    st.caption(f"Made from version {parent}" if parent else "A new line of versions")
    if st.form_submit_button("Save version", type="primary"):
        try:
            v = save_mix(store, spec, name, author=author, parent=parent, note=note, tokenizer_dir=tokenizer)
            ss["mix_version"] = v.name  # the versions below show, and download, the one just saved
            ss.pop("mix_download", None)
            made = f" giving {describe_pairs(store, v.name)}" if v.pairs else ""
            st.success(f"Saved '{v.name}': {v.size} trajectories ({v.n_train} train, {v.n_val} val){made}, "
                       f"hash {v.content_hash[:12]}")
        except FireactError as exc:
            show_error(exc)

st.subheader("Versions")
versions = versions_frame(store)
if versions.empty:
    st.info("No version saved yet.")
    st.stop()
plain_table(versions)
if ss.get("mix_version") not in set(versions["name"]):
    ss["mix_version"] = versions["name"].iloc[-1]
pick = st.selectbox("Version", list(versions["name"]), key="mix_version")
a, b, c = st.columns(3)
a.button("Load its spec into the mixer", on_click=load_version, args=(pick,), key="mix_load")
fmt = b.selectbox("Format", DATASET_FORMATS, key="mix_format")
split = c.selectbox("Split", ["all", "train", "val"], key="mix_split")
if st.button("Prepare download", key="mix_prepare"):
    try:
        ss["mix_download"] = export_dataset_bytes(store, pick, fmt, None if split == "all" else split)
        ss["mix_download_of"] = (pick, fmt, split)
    except FireactError as exc:
        show_error(exc)
if ss.get("mix_download") and ss.get("mix_download_of") == (pick, fmt, split):
    file_name, data = ss["mix_download"]
    st.download_button(f"Download {file_name}", data, file_name=file_name, key="mix_download_button")
