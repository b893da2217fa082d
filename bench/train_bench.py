"""Training throughput and padding waste.

Default (CPU, a few minutes at most): LoRA on the tiny random Llama (built on the fly) over FireAct's
gpt_hotpotqa trajectories, with random batches, length-grouped batches and packed (padding-free) batches;
prints tokens/s and the share of padding tokens for each.

    .venv/bin/python bench/train_bench.py [--examples 400] [--steps 20] [--batch-size 8]

--gpu: LoRA on a 1B-parameter Llama-shaped model (random weights, bf16, built on the fly, nothing downloaded)
with full 2048-token rows; prints tokens/s and model FLOPs utilisation (MFU).

    python bench/train_bench.py --gpu [--seq 2048 --batch-size 8 --steps 30 --peak-tflops 989]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "fireact"
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}


def timed_train(trainer, warmup: int = 0) -> tuple[float, int]:
    """Seconds spent in optimiser steps after `warmup` steps, and how many steps that was."""
    from transformers import TrainerCallback

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    start = time.perf_counter()
    trainer.train()
    marks.insert(0, start)
    return marks[-1] - marks[warmup], len(marks) - 1 - warmup


def cpu_bench(args: argparse.Namespace) -> None:
    import torch

    from fireact_core.io.formats import read_file
    from fireact_core.training import LocalTrainConfig
    from fireact_core.training.data import TokenCounter, write_examples
    from fireact_core.training.local import build_trainer
    from tests.fakes.tiny_model import build_tiny_model

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    model = build_tiny_model(work / "tiny", SHARED)
    trajs = read_file(SHARED / "finetune" / "gpt_hotpotqa.jsonl").trajectories[: args.examples]
    write_examples(trajs, work / "train.jsonl", "observations")
    print(f"tiny Llama (hidden 64, 2 layers), {len(trajs)} FireAct trajectories, batch {args.batch_size}, "
          f"{args.steps} steps, max length {args.max_length}, {torch.get_num_threads()} threads")
    print(f"{'batching':<16} {'tokens/s':>10} {'padding':>8} {'real tokens':>12} {'padded':>8}")
    for batching in ("random", "group_by_length", "packing"):
        counter = TokenCounter()
        config = LocalTrainConfig(dataset="bench", base_model=str(model), out=str(work / batching), use_cpu=True,
                                  max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                                  batching=batching, train_file=str(work / "train.jsonl"), logging_steps=10 ** 6,
                                  save_steps=10 ** 6)
        trainer, _ = build_trainer(config, counter)
        seconds, _ = timed_train(trainer)
        print(f"{batching:<16} {counter.real / seconds:>10.0f} {counter.padding_share:>8.1%} {counter.real:>12} "
              f"{counter.padded:>8}")


def llama_1b_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                       tie_word_embeddings=True, rope_theta=500000.0)


def gpu_bench(args: argparse.Namespace) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from fireact_core.training.data import PaddingCollator, TokenCounter
    from fireact_core.training.local import hide_shadowing_datasets

    device = "cpu" if args.dry_run else "cuda"
    assert args.dry_run or torch.cuda.is_available(), "--gpu needs a CUDA device"
    hide_shadowing_datasets()
    torch.manual_seed(0)
    cfg = llama_1b_config() if not args.dry_run else LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules="all-linear"))
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, cfg.vocab_size, (args.seq,), generator=gen).tolist()
            for _ in range(args.batch_size * (args.steps + 2))]
    data = [{"input_ids": r, "labels": r, "attention_mask": [1] * len(r)} for r in rows]
    counter = TokenCounter()
    targs = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="gpu-bench-"), per_device_train_batch_size=args.batch_size,
                              max_steps=args.steps, learning_rate=1e-4, bf16=not args.dry_run, use_cpu=args.dry_run,
                              logging_steps=10 ** 6,
                              save_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False,
                              activation_checkpointing=args.checkpointing,
                              activation_checkpointing_kwargs={"use_reentrant": False} if args.checkpointing else None)
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=PaddingCollator(0, counter))
    warmup = min(5, args.steps // 3)
    seconds, steps = timed_train(trainer, warmup)
    tokens_per_s = steps * args.batch_size * args.seq / seconds
    name = "CPU (dry run, tiny shape)" if args.dry_run else torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), 0.0)
    non_embed = n_params - cfg.vocab_size * cfg.hidden_size  # the tied embedding is a lookup; the lm head is a matmul
    lm_head = cfg.vocab_size * cfg.hidden_size
    attention = 6 * cfg.num_hidden_layers * args.seq * cfg.hidden_size  # causal QK^T and AV, forward + backward
    lora_flops = 4 * (non_embed + lm_head) + attention  # frozen weights: no weight gradients, so 4N, not 6N
    conventional = 6 * (non_embed + lm_head) + attention
    dtype = "fp32" if args.dry_run else "bf16"
    print(f"{name}: Llama-shaped ({n_params / 1e9:.2f}B parameters), LoRA r=16 all-linear, {dtype}, seq {args.seq}, "
          f"batch {args.batch_size}, checkpointing {args.checkpointing}, {steps} timed steps")
    print(f"tokens/s: {tokens_per_s:,.0f}")
    if not args.dry_run:
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if peak:
        print(f"MFU (LoRA FLOPs: 4N + attention per token): {tokens_per_s * lora_flops / (peak * 1e12):.1%}")
        print(f"MFU (6N + attention convention, as for full fine-tuning): "
              f"{tokens_per_s * conventional / (peak * 1e12):.1%}  [peak {peak:.0f} TFLOP/s bf16 dense]")
    else:
        print("MFU: unknown peak for this device; pass --peak-tflops")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="LoRA on a 1B Llama-shaped model on a CUDA device")
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing (--gpu)")
    parser.add_argument("--dry-run", action="store_true", help="--gpu's code path on the CPU with a tiny shape")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device bf16 peak (--gpu; default by name)")
    args = parser.parse_args()
    if args.gpu:
        args.steps = args.steps or 30
        gpu_bench(args)
    else:
        args.steps = args.steps or 20
        cpu_bench(args)


if __name__ == "__main__":
    main()
