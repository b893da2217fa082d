"""The Mix page's sidebar settings: the filters and the training options."""

from __future__ import annotations

import streamlit as st

from fireact_core.io.lint import LINT_KINDS
from fireact_core.io.masks import LOSS_MASKS
from ui import panel_on_demand

# what the page starts from; a loaded version sets them too
FILTER_DEFAULTS = {"mix_correct": False, "mix_accepted": False, "mix_rejected": False, "mix_max_steps": 0,
                   "mix_eval": True, "mix_lints": [], "mix_irregular": False, "mix_dedupe": True, "mix_keep": "best"}
TRAINING_DEFAULTS = {"mix_mask": "observations", "mix_upsample": False, "mix_tokenizer": ""}


def _filters_summary(pairs: str | None) -> str:
    ss = st.session_state
    parts = [text for key, text in (("mix_correct", "only correct"), ("mix_accepted", "only accepted"),
                                    ("mix_rejected", "no rejected"), ("mix_eval", "no evaluation questions"),
                                    ("mix_irregular", "irregular rows kept")) if ss[key]]
    if ss["mix_max_steps"]:
        parts.append(f"at most {ss['mix_max_steps']} steps")
    if ss["mix_lints"]:
        parts.append("without " + ", ".join(ss["mix_lints"]))
    if ss["mix_dedupe"] and not pairs:
        parts.append(f"one per question ({'best-scored' if ss['mix_keep'] == 'best' else 'latest revision'})")
    return ", ".join(parts) or "none"


def _training_summary() -> str:
    ss = st.session_state
    parts = [LOSS_MASKS.get(ss["mix_mask"], ss["mix_mask"])]
    if ss["mix_upsample"]:
        parts.append("upsampling short cells")
    if ss["mix_tokenizer"].strip():
        parts.append("tokens counted with the tokenizer folder")
    return ", ".join(parts)


def filters_and_training(pairs: str | None) -> tuple[dict, str, bool, str | None]:
    """The filters (as MixSpec's `filters`), the loss mask, upsampling and the tokenizer folder, in two panels of
    the sidebar drawn only while open; `pairs` (preference pairs) turns deduplication off. Their values are set by
    the page too (defaults, a loaded version) and hold while a panel is closed; a caption under each panel says
    what applies."""
    ss = st.session_state
    for key, value in {**FILTER_DEFAULTS, **TRAINING_DEFAULTS}.items():
        ss.setdefault(key, value)
    panel = panel_on_demand("Filters", "mix_filters_open", icon=":material/filter_alt:", holds=tuple(FILTER_DEFAULTS))
    st.caption(f"Filters: {_filters_summary(pairs)}")
    if panel:
        with panel:
            keep = {"persist_state": "page"}
            st.checkbox("Only correct (EM)", key="mix_correct", **keep)
            st.checkbox("Only accepted", key="mix_accepted", **keep)
            st.checkbox("Exclude rejected", key="mix_rejected", **keep)
            st.number_input("Max steps (0: no limit)", min_value=0, key="mix_max_steps", **keep)
            st.checkbox("Exclude questions in evaluation splits", key="mix_eval", **keep)
            st.multiselect("Exclude lint kinds", [k for k in LINT_KINDS if k != "eval_contamination"],
                           key="mix_lints", **keep)
            st.checkbox("Keep rows with an irregular layout", key="mix_irregular", **keep,
                        help="no question, the model's turn first, two observations in a row, no steps")
            st.checkbox("Dedupe by question", key="mix_dedupe", disabled=bool(pairs), **keep,
                        help="off for pairs: they need every trajectory of a question")
            st.radio("Keep", ["best", "latest"], key="mix_keep", horizontal=True, **keep,
                     disabled=not ss["mix_dedupe"] or bool(pairs),
                     format_func={"best": "best-scored", "latest": "latest revision"}.get)
    panel = panel_on_demand("Training", "mix_training_open", icon=":material/model_training:",
                            holds=tuple(TRAINING_DEFAULTS))
    st.caption(f"Loss: {_training_summary()}")
    if panel:
        with panel:
            st.radio("Loss mask", list(LOSS_MASKS), key="mix_mask", format_func=LOSS_MASKS.get, persist_state="page")
            st.checkbox("Allow upsampling short cells", key="mix_upsample", persist_state="page")
            st.text_input("Tokenizer (local model folder, optional)", key="mix_tokenizer", persist_state="page")
    dedupe = ss["mix_dedupe"] and not pairs
    filters = {"only_correct": ss["mix_correct"], "only_accepted": ss["mix_accepted"],
               "exclude_rejected": ss["mix_rejected"], "dedupe": dedupe, "dedupe_keep": ss["mix_keep"],
               "max_steps": int(ss["mix_max_steps"]) or None,
               "exclude_lints": (["eval_contamination"] if ss["mix_eval"] else []) + list(ss["mix_lints"]),
               "keep_irregular": ss["mix_irregular"]}
    return filters, ss["mix_mask"], ss["mix_upsample"], ss["mix_tokenizer"].strip() or None
