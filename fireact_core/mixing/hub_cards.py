"""Cards: the README.md of an exported dataset folder (a Hugging Face dataset card) and of a trained model's
folder (a model card). Both are plain text built from what the database and the run folder record, so the same
version or job always gives the same card.

A dataset card's YAML header declares the configs and splits (`datasets.load_dataset(DIR)` reads it); its body
says what the mix was (spec, counts by task x method, filters, lints left out), its content hash and parent
version, and the licence and citation of the sources.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..records import DatasetVersion

FIREACT_CITATION = """@article{chen2023fireact,
  title   = {FireAct: Toward Language Agent Fine-tuning},
  author  = {Chen, Baian and Shu, Chang and Shareghi, Ehsan and Collier, Nigel and Narasimhan, Karthik and Yao, Shunyu},
  journal = {arXiv preprint arXiv:2310.05915},
  year    = {2023}
}"""
CITATION_SECTION = ["## Citation", "", "```bibtex", FIREACT_CITATION, "```", ""]

# Question sets of the tasks: (name, licence as the Hub names it or None when not stated here, reference).
TASK_SOURCES: dict[str, tuple[str, str | None, str]] = {
    "hotpotqa": ("HotpotQA", "cc-by-sa-4.0", "Yang et al., 2018. HotpotQA: A Dataset for Diverse, Explainable "
                 "Multi-hop Question Answering. EMNLP. https://hotpotqa.github.io"),
    "strategyqa": ("StrategyQA", "mit", "Geva et al., 2021. Did Aristotle Use a Laptop? A Question Answering "
                   "Benchmark with Implicit Reasoning Strategies. TACL. https://allenai.org/data/strategyqa"),
    "mmlu": ("MMLU", "mit", "Hendrycks et al., 2021. Measuring Massive Multitask Language Understanding. ICLR. "
             "https://github.com/hendrycks/test"),
    "bamboogle": ("Bamboogle", None, "Press et al., 2023. Measuring and Narrowing the Compositionality Gap in "
                  "Language Models. Findings of EMNLP. https://github.com/ofirpress/self-ask"),
}
FILTER_TEXT = {
    "only_correct": "only trajectories whose answer is right (EM 1, else reward)",
    "only_accepted": "only trajectories whose latest review is accepted",
    "exclude_rejected": "trajectories whose latest review is rejected left out",
    "dedupe": "one trajectory per question (by normalised question text)",
    "max_steps": "trajectories with more than {} steps left out",
}
LOSS_MASK_TEXT = {
    "observations": "thoughts and actions carry loss; observations, the prompt and the question do not",
    "none": "everything after the question carries loss, observations too; the prompt and the question do not",
}


def _yaml(value: Any) -> str:
    """A YAML scalar (JSON's quoting is valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def _hf_feature_lines(schema: Any) -> list[str]:
    """`dataset_info.features` for a Parquet schema of strings, numbers, booleans and the messages list."""
    import pyarrow as pa

    names = {pa.string(): "string", pa.bool_(): "bool", pa.float64(): "float64", pa.int32(): "int32"}
    lines = ["  features:"]
    for field in schema:
        if pa.types.is_list(field.type):
            lines += [f"  - name: {field.name}", "    list:"]
            lines += [f"    - name: {sub.name}\n      dtype: {names[sub.type]}" for sub in field.type.value_type]
        else:
            lines += [f"  - name: {field.name}", f"    dtype: {names[field.type]}"]
    return lines


def _header(version: DatasetVersion, fmt: str, rows: dict[str, list[dict]], written: dict, licences: list[str]) -> str:
    files, total = written["files"], sum(len(r) for r in rows.values())
    lines = ["---", f"pretty_name: {_yaml(version.name)}", "license:", *[f"- {x}" for x in licences],
             "language:", "- en", "task_categories:", "- text-generation", "tags:", "- agents", "- react",
             "- fireact", "- tool-use", "size_categories:", f"- {_size_category(total)}", "configs:",
             "- config_name: default", "  data_files:"]
    for split, path in files.items():
        lines += [f"  - split: {split}", f"    path: {_yaml(path)}"]
    if "schema" in written:  # Parquet: the exact features, and each split's size for the reader to check
        lines += ["dataset_info:", "  config_name: default", *_hf_feature_lines(written["schema"]), "  splits:"]
        for split, members in rows.items():
            lines += [f"  - name: {split}", f"    num_bytes: {written['nbytes'][split]}",
                      f"    num_examples: {len(members)}"]
    return "\n".join(lines + ["---", ""])


def _counts_table(rows: dict[str, list[dict]]) -> list[str]:
    counts = Counter((r["task"], r["method"], split) for split, members in rows.items() for r in members)
    cells = sorted({(t, m) for t, m, _ in counts})
    splits = list(rows)
    lines = ["| task | method | " + " | ".join(splits) + " | total |",
             "| --- | --- | " + "--- | " * len(splits) + "--- |"]
    for t, m in cells:
        per = [counts[(t, m, s)] for s in splits]
        lines.append(f"| {t} | {m} | " + " | ".join(map(str, per)) + f" | {sum(per)} |")
    per = [len(rows[s]) for s in splits]
    lines.append("| **all** | | " + " | ".join(map(str, per)) + f" | {sum(per)} |")
    return lines


def _filters(spec: dict) -> tuple[list[str], list[str]]:
    """Lines naming the active filters, and the lint kinds whose trajectories were left out."""
    from ..io.lint import IRREGULAR_KINDS

    filters = spec.get("filters") or {}
    lints = list(filters.get("exclude_lints") or [])
    lines = []
    if "keep_irregular" in filters and not filters["keep_irregular"]:
        lines.append("- rows imported with an irregular conversation layout left out")
        lints += [k for k in IRREGULAR_KINDS if k not in lints]
    for key, text in FILTER_TEXT.items():
        value = filters.get(key)
        if key == "max_steps" and value is not None:
            lines.append(f"- {text.format(value)}")
        elif value and key != "max_steps":
            keep = f", keeping the {filters.get('dedupe_keep', 'best')}" if key == "dedupe" else ""
            lines.append(f"- {text}{keep}")
    return lines or ["- none"], lints


def _sources(rows: dict[str, list[dict]]) -> tuple[list[str], list[str]]:
    """Lines on where the members come from and the licences that apply (as the Hub names them)."""
    members = [r for split in rows.values() for r in split]
    sources = Counter(r["source"] for r in members)
    tasks = sorted({r["task"] for r in members})
    lines = ["Trajectories per source (as imported or generated in FireAct Studio):", ""]
    lines += [f"- `{name}`: {n}" for name, n in sorted(sources.items())]
    lines += ["", "Questions come from these task sets; their licences apply to the questions and gold answers:", ""]
    licences = set()
    for task in tasks:
        name, licence, ref = TASK_SOURCES.get(task, (task, None, "not a task FireAct Studio knows; see its source"))
        licences.add(licence or "other")
        lines.append(f"- {name} (`{task}`), licence: {licence or 'see the source'}. {ref}")
    lines += ["", "The trajectories follow FireAct's format and method (MIT licence, "
              "https://github.com/anchen1011/FireAct). Text written by a model is also subject to the terms of the "
              "model that wrote it (the `model` column, where known)."]
    return lines, sorted(licences)


def dataset_card(version: DatasetVersion, fmt: str, rows: dict[str, list[dict]], written: dict,
                 parent: DatasetVersion | None = None) -> str:
    """README.md of an exported dataset folder (`fmt`: hf, axolotl or llamafactory)."""
    spec = version.spec
    filter_lines, lints = _filters(spec)
    source_lines, licences = _sources(rows)
    lineage = (f"derived from version `{parent.name}` (content hash `{parent.content_hash}`), reusing its spec"
               if parent else "none: this version was mixed from the database directly")
    body = [
        f"# {version.name}",
        "",
        "Language-agent fine-tuning data after FireAct (Chen et al., 2023): each row is one trajectory of "
        "Thought / Action / Observation turns as chat messages, exported by FireAct Studio from the dataset "
        f"version `{version.name}`.",
        "",
        "## Columns",
        "",
        "`messages` is a list of `{role, content, train}` turns: the prompt and the question first, then the "
        "model's turns (`assistant`: thought and action) and the observations (`user`). `train` says whether the "
        f"turn carries loss: {LOSS_MASK_TEXT.get(version.loss_mask, version.loss_mask)} (loss mask "
        f"`{version.loss_mask}`); a step switched off in the editor carries none. The other columns: `id`, "
        "`task`, `method`, `source`, `qid` (question id in its task set), `em` (exact match of the final answer)"
        + (", `question`, `gold`, `prediction`, `f1`, `reward`, `model`, `revision`." if fmt == "hf" else "."),
        "",
        "## Mix",
        "",
        f"- size {version.size}: {version.n_train} train, {version.n_val} validation "
        "(validation holds out whole questions)",
        f"- seed {version.seed}, created {version.created_at:%Y-%m-%d %H:%M} UTC"
        + (f" by {version.created_by}" if version.created_by else ""),
        f"- content hash `{version.content_hash}` (md5 over the loss mask and each member's position, split, "
        "trajectory id and revision)",
        f"- parent version: {lineage}",
        *([f"- note: {version.note}"] if version.note else []),
        "",
        "Spec (`fireact mix --spec`):",
        "",
        "```json",
        json.dumps(spec, indent=2, sort_keys=True),
        "```",
        "",
        "### Counts by task x method",
        "",
        *_counts_table(rows),
        "",
        "### Filters",
        "",
        *filter_lines,
        "",
        "### Lints left out",
        "",
        ("Trajectories flagged by these data checks were left out: " + ", ".join(f"`{k}`" for k in lints) + "."
         if lints else "None: no data check was used to leave trajectories out."),
        "",
        *_format_section(version, fmt, written),
        "## Sources and licences",
        "",
        *source_lines,
        "",
        *CITATION_SECTION,
    ]
    return _header(version, fmt, rows, written, licences) + "\n".join(body)


def _format_section(version: DatasetVersion, fmt: str, written: dict) -> list[str]:
    name = version.name
    if fmt == "hf":
        return ["## Loading", "", "```python", "from datasets import load_dataset", "",
                'ds = load_dataset("path/to/this/folder")  # or the Hub repository it was uploaded to',
                'ds["train"][0]["messages"]', "```", ""]
    if fmt == "axolotl":
        return ["## Training with axolotl", "",
                "`axolotl.yaml` holds the `datasets` (and `test_datasets`) entries: `type: chat_template` over "
                "`messages`, with `message_field_training: train` so each turn's flag decides its loss (without it "
                "axolotl trains every assistant turn, switched-off steps too). Add the model and training settings, "
                "then run `axolotl train axolotl.yaml` from this folder.", ""]
    notes = written.get("notes") or {}
    lines = ["## Training with LLaMA-Factory", "",
             f"`dataset_info.json` has the entries `{'`, `'.join(written.get('entries', []))}` (sharegpt layout, "
             "columns and role tags mapped). Give this folder as `dataset_dir` and "
             f"`dataset: {name}`" + (f", `eval_dataset: {name}_validation`." if "validation" in written["files"]
                                      else "."), "",
             "Rows per file: " + ", ".join(f"`{path}` {written['kept'][split]}"
                                           for split, path in written["files"].items())
             + ". LLaMA-Factory trains every assistant turn and no user turn; it has no per-turn flag. Against this "
             "version's flags:", ""]
    lines += [f"- {what}: {n}" for what, n in sorted(notes.items())] or ["- no difference"]
    return lines + [""]
