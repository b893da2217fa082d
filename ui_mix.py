"""The Mix page's sidebar settings: the filters and the training options."""

from __future__ import annotations

import streamlit as st

from fireact_core.io.lint import LINT_KINDS
from fireact_core.io.masks import LOSS_MASKS


def filters_and_training(pairs: str | None) -> tuple[dict, str, bool, str | None]:
    """The filters (as MixSpec's `filters`), the loss mask, upsampling and the tokenizer folder, drawn in the
    sidebar; `pairs` (preference pairs) turns deduplication off. Their values are set by the page too (defaults,
    a loaded version), so they stay drawn: a widget kept behind a closed button would not learn of such a value
    and would send back its own default when next touched."""
    st.subheader("Filters")
    only_correct = st.checkbox("Only correct (EM)", key="mix_correct")
    only_accepted = st.checkbox("Only accepted", key="mix_accepted")
    no_rejected = st.checkbox("Exclude rejected", key="mix_rejected")
    max_steps = st.number_input("Max steps (0: no limit)", min_value=0, key="mix_max_steps")
    no_eval = st.checkbox("Exclude questions in evaluation splits", key="mix_eval")
    lints = st.multiselect("Exclude lint kinds", [k for k in LINT_KINDS if k != "eval_contamination"], key="mix_lints")
    keep_irregular = st.checkbox("Keep rows with an irregular layout", key="mix_irregular",
                                 help="no question, the model's turn first, two observations in a row, no steps")
    dedupe = st.checkbox("Dedupe by question", key="mix_dedupe", disabled=bool(pairs),
                         help="off for pairs: they need every trajectory of a question") and not pairs
    keep = st.radio("Keep", ["best", "latest"], key="mix_keep", horizontal=True, disabled=not dedupe,
                    format_func={"best": "best-scored", "latest": "latest revision"}.get)
    st.subheader("Training")
    mask = st.radio("Loss mask", list(LOSS_MASKS), key="mix_mask", format_func=LOSS_MASKS.get)
    upsample = st.checkbox("Allow upsampling short cells", key="mix_upsample")
    tokenizer = st.text_input("Tokenizer (local model folder, optional)", key="mix_tokenizer").strip() or None
    filters = {"only_correct": only_correct, "only_accepted": only_accepted, "exclude_rejected": no_rejected,
               "dedupe": dedupe, "dedupe_keep": keep, "max_steps": int(max_steps) or None,
               "exclude_lints": (["eval_contamination"] if no_eval else []) + lints, "keep_irregular": keep_irregular}
    return filters, mask, upsample, tokenizer
