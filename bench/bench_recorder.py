"""What trainmap.record.Recorder costs a training run: per log call, and as a share of
training time when logging at a typical interval.

Run: ``.venv/bin/python bench/bench_recorder.py [--reps N] [--models mlp,tiny_bert,bert_base]``.
One thread (``torch.set_num_threads(1)``), process CPU time (``time.process_time``), so a
machine shared with other jobs inflates both sides alike. For each model, in one run:
the training step (forward, backward, optimizer step) as the baseline, ``Recorder.log``
(the 14 metrics of the family's weights; no file write: ``flush_every`` is large), and one
write of a 1,000-row file (what a flush costs late in a long run). Overhead at an interval
of N steps = log / (N x step).

Models (random weights, built from configs; nothing is downloaded):
- ``mlp``: examples/plain_loop.py's 16-64-64-2 MLP, batch 64, a log every 10 steps
  (as the example) and every 100.
- ``tiny_bert``: examples/hf_trainer.py's BertForMaskedLM (2 layers, hidden 32), batch
  32 x 16 tokens, a log every 5 steps (as the example) and every 100.
- ``bert_base``: BertForMaskedLM at BERT-base size (12 layers, hidden 768, 12 heads,
  intermediate 3072, vocabulary 30,522; 110M parameters), batch 8 x 128 tokens, a log
  every 1,000 steps (a pretraining evaluation interval; MultiBERTs saved every 20,000).
"""

import argparse
import platform
import statistics
import tempfile
import time

import pandas as pd
import torch
from torch import nn
from transformers import BertConfig, BertForMaskedLM

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.io.files import write_parquet
from trainmap.record import Recorder


def mlp():
    model = nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )
    x, y = torch.randn(64, 16), torch.randint(2, (64,))
    return model, lambda m: nn.functional.cross_entropy(m(x), y), (10, 100)


def bert(hidden, layers, heads, intermediate, vocab, batch, length, intervals):
    config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=intermediate,
                        max_position_embeddings=max(length, 512))  # fmt: skip
    model = BertForMaskedLM(config)
    ids = torch.randint(5, vocab, (batch, length))
    return model, lambda m: m(input_ids=ids, labels=ids).loss, intervals


MODELS = {
    "mlp": mlp,
    "tiny_bert": lambda: bert(32, 2, 2, 64, 40, 32, 16, (5, 100)),
    "bert_base": lambda: bert(768, 12, 12, 3072, 30522, 8, 128, (1000,)),
}


def cpu_seconds(fn, reps: int) -> float:
    """Median process CPU seconds of ``fn()`` over ``reps`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def measure(name: str, reps: int) -> list[dict]:
    torch.manual_seed(0)
    model, loss_of, intervals = MODELS[name]()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = loss_of(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step_s = cpu_seconds(step, reps)
    with tempfile.TemporaryDirectory() as directory:
        rec = Recorder(directory, seed=0, model=model, flush_every=1e9)
        counter = iter(range(10**9))
        log_s = cpu_seconds(lambda: rec.log(next(counter), train_loss=1.0), reps)
        rows = pd.DataFrame([{"seed": 0, "step": i, "epoch": 0, "train_loss": 1.0,
                              **dict.fromkeys(METRIC_COLUMNS, 0.5), "diverged": False}
                             for i in range(1000)])  # fmt: skip
        write_s = cpu_seconds(lambda: write_parquet(rows, f"{directory}/w.parquet"), reps)
        family = rec.selection.family
        matrices = len(rec.selection.names["matrices"])
    params = sum(p.numel() for p in model.parameters())
    return [
        {
            "model": name,
            "parameters": params,
            "family": family,
            "matrices": matrices,
            "step_ms": step_s * 1e3,
            "log_ms": log_s * 1e3,
            "write_1000_rows_ms": write_s * 1e3,
            "interval": n,
            "overhead_%": 100 * log_s / (n * step_s),
        }
        for n in intervals
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    rows = []
    for name in args.models.split(","):
        reps = args.reps if name != "bert_base" else max(2, args.reps // 2)
        rows += measure(name, reps)
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
