"""Short display names for runs, sources and models, and fine-tuned models told from FireAct's own names."""

from __future__ import annotations

import pandas as pd

from fireact_core.reports import figures as reports
from fireact_core.names import display_model, display_name, display_names, finetuned_base
from tests.conftest import RUN_FILE


def test_fireact_run_file_names_read_as_model_task_split_range_date():
    assert display_name(RUN_FILE.stem) == "llama-2-7b-d_1000 (LoRA) · hotpotqa dev 0–500 · 2023-09-19"
    ft = "strategyqa_dev_0_100_ft_gpt-3.5-turbo-0613_fireact__7q2Lx9Zk_0.0_2023-09-20-11-02-03"
    assert display_name(ft) == "gpt-3.5-turbo-0613 (fine-tuned 7q2Lx9Zk) · strategyqa dev 0–100 · 2023-09-20"
    assert display_name("hotpotqa_dev_react_gpt-4o-mini_2026-01-02-03-04-05") == "gpt-4o-mini · hotpotqa dev react · 2026-01-02"
    assert display_name("gpt_hotpotqa") == "gpt_hotpotqa"
    long = "x" * 100
    assert len(display_name(long)) == 48 and "…" in display_name(long)


def test_names_that_would_read_the_same_keep_their_full_names():
    a = "hotpotqa_dev_0_500_gpt-4_0.0_2023-09-19-00-49-36"
    b = "hotpotqa_dev_0_500_gpt-4_0.7_2023-09-19-08-00-00"
    c = "hotpotqa_dev_500_1000_gpt-4_0.0_2023-09-19-00-49-36"
    short = display_names([a, b, c])
    assert short[a] == a and short[b] == b and short[c] == "gpt-4 · hotpotqa dev 500–1000 · 2023-09-19"


def test_fine_tuned_models_from_fireact_names():
    assert finetuned_base("llama_models_lora_llama-2-7b-d_1000") == "llama-2-7b"
    assert finetuned_base("ft:gpt-3.5-turbo-0613:org::8AbC") == "gpt-3.5-turbo-0613"
    assert finetuned_base("ft_gpt-3.5-turbo-0613_org__8AbC") == "gpt-3.5-turbo-0613"
    assert finetuned_base("llama_meta-llama_Llama-2-7b-hf") is None  # a base model read by path: prompted
    assert finetuned_base("gpt-4") is None and finetuned_base(None) is None
    assert display_model("llama_models_lora_llama-2-7b-d_1000") == "llama-2-7b-d_1000 (LoRA)"


def test_dashboard_variants_and_model_by_method_table_recognise_fireact_runs():
    runs = pd.DataFrame({
        "run": ["r1", "r2", "r3", "r4"], "model": ["llama_models_lora_llama-2-7b-d_1000", "llama-2-7b",
                                                   "ft_gpt-3.5-turbo-0613_o__x", "gpt-3.5-turbo-0613"],
        "mode": [None] * 4, "method": ["react", "react", "cot", "io"], "task": ["hotpotqa"] * 4,
        "scored": [10] * 4, "attempted": [10] * 4, "em_sum": [3.0, 1.0, 5.0, 2.0], "f1_sum": [4.0, 2.0, 6.0, 3.0],
    })
    v = reports.with_variants(runs, {})
    assert list(v["variant"]) == ["fine-tuned", "prompted", "fine-tuned", "prompted"]
    assert list(v["base_model"]) == ["llama-2-7b", "llama-2-7b", "gpt-3.5-turbo-0613", "gpt-3.5-turbo-0613"]
    grid, cells = reports.model_method_table(v, {})
    assert list(grid.columns) == ["io", "cot", "react"]
    assert grid.loc["llama-2-7b-d_1000 (LoRA)", "react"] == 0.3 and grid.loc["llama-2-7b", "react"] == 0.1
    assert grid.loc["gpt-3.5-turbo-0613 (fine-tuned x)", "cot"] == 0.5 and pd.isna(grid.loc["llama-2-7b", "io"])
    assert cells[("gpt-3.5-turbo-0613", "io")] == ["r4"]
