"""The Train page's job forms: a widget for each field of a training config, with written labels, grouped as the
config's metadata says."""

from __future__ import annotations

import streamlit as st

from fireact_core.training import form_fields

LABELS = {
    "base_model": "Base model folder", "out": "Run folder", "method": "Method", "model_name": "Register the model as",
    "lora_r": "LoRA rank (r)", "lora_alpha": "LoRA alpha", "lora_dropout": "LoRA dropout",
    "target_modules": "Layers with adapters", "learning_rate": "Learning rate", "epochs": "Epochs",
    "max_steps": "Max steps", "batch_size": "Batch size (per device)", "grad_accum": "Gradient accumulation steps",
    "lr_scheduler": "Learning-rate schedule", "warmup_steps": "Warm-up steps", "weight_decay": "Weight decay",
    "max_length": "Max length (tokens)", "overflow": "Longer examples", "batching": "Batching",
    "precision": "Precision", "gradient_checkpointing": "Gradient checkpointing (saves memory)",
    "use_cpu": "Train on the CPU", "num_processes": "Processes (GPUs)", "accelerate_config": "Accelerate config file",
    "seed": "Seed", "logging_steps": "Log every (steps)", "eval_steps": "Evaluate every (steps)",
    "save_steps": "Checkpoint every (steps)", "save_total_limit": "Checkpoints kept", "model": "Base model",
    "suffix": "Name suffix", "base_url": "API base URL",
}
NEW_JOB_ONLY = {"resume"}  # resuming a job is the Jobs tab's Resume button, not a setting of a new job
LENGTH = {"epochs": "Epochs", "max steps": "Max steps"}


def widget(f: dict, key: str):
    k, label, help_ = f"{key}.{f['name']}", LABELS.get(f["name"], f["label"]), f["help"]
    if "choices" in f:
        return st.selectbox(label, f["choices"], index=f["choices"].index(f["default"]), help=help_, key=k)
    if f["type"] == "bool":
        return st.checkbox(label, value=f["default"], help=help_, key=k)
    if f["type"] == "int":
        return int(st.number_input(label, value=f["default"], min_value=f.get("min"), max_value=f.get("max"), step=1,
                                   help=help_, key=k))
    if f["type"] == "float":
        lo, hi = f.get("min"), f.get("max")
        return st.number_input(label, value=float(f["default"]), min_value=None if lo is None else float(lo),
                               max_value=None if hi is None else float(hi), step=f.get("step"),
                               format=f.get("format", "%.4g"), help=help_, key=k)
    if f["type"] == "list":
        text = st.text_input(label, ", ".join(f["default"]), help=help_, key=k)
        return [part.strip() for part in text.split(",") if part.strip()]
    return st.text_input(label, f["default"], help=help_, key=k)


def config_form(cls: type, key: str, datasets: list[str], length: str | None = None) -> dict:
    """Widgets for every visible field of a config class, grouped as its metadata says, after the choice of a
    dataset version among `datasets`. With `length` ("epochs" or "max steps"), only that one of Epochs and Max
    steps is asked; the other is off."""
    skip = {"dataset"} | NEW_JOB_ONLY
    if length:
        skip.add("max_steps" if length == "epochs" else "epochs")
    fields = [f for f in form_fields(cls) if f["name"] not in skip]
    if length == "max steps":  # asked for on purpose: at least one step
        fields = [{**f, "default": max(f["default"], 100), "min": 1} if f["name"] == "max_steps" else f for f in fields]
    values = {"dataset": st.selectbox("Dataset version", datasets, key=f"{key}.dataset")}
    if length == "epochs":
        values["max_steps"] = 0
    for group in dict.fromkeys(f["group"] for f in fields):
        with st.expander(group, expanded=group in ("Model", "Data")):
            cols = st.columns(3)
            for i, f in enumerate(g for g in fields if g["group"] == group):
                with cols[i % 3]:
                    values[f["name"]] = widget(f, key)
    return values
