"""A tiny GPT-2 trained by Hugging Face's Trainer with leaky's Monitor as its callback.

Built from a config (random weights, nothing downloaded), offline, about 10 s on a 2-core
CPU. The text is leaky's ``pydoc-text`` task (CPython's documentation topics, characters as
tokens, 8 at a time, shipped with Python itself). The callback's scalars go into the
Trainer's logs (``trainer.state.log_history`` and TensorBoard under ``out/hf``); at the end
it prints its verdict, then the whole report.

    python examples/hf_tiny_gpt2.py
    tensorboard --logdir out/hf
"""

from __future__ import annotations

import argparse
import os

import torch
import transformers

from leaky.data import load_named_dataset
from leaky.integrations.hugging_face import add_monitor


class Windows(torch.utils.data.Dataset):
    """Windows of 8 tokens; the model learns to predict each next one."""

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokens[i], "labels": self.tokens[i]}


def main() -> None:
    """Train for ``--steps`` optimizer steps and print what the Monitor saw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    data = load_named_dataset("pydoc-text")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=data.num_classes,
        n_positions=8,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", "out/hf")
    arguments = transformers.TrainingArguments(
        output_dir="out/hf-trainer",
        max_steps=args.steps,
        per_device_train_batch_size=64,
        learning_rate=3e-3,
        logging_steps=20,
        report_to=["tensorboard"],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = transformers.Trainer(
        model=model, args=arguments, train_dataset=Windows(data.x_train[:20000])
    )
    callback = add_monitor(trainer)
    trainer.train()
    last = trainer.state.log_history[-2]
    print(f"loss at step {last['step']}: {last['loss']:.3f}")
    print(callback.report)


if __name__ == "__main__":
    main()
