"""Time one checkpoint of a BERT-base-sized series (source: checkpoints) on the CPU.

Run: ``.venv/bin/python bench/bench_checkpoints.py [--reps N] [--threads T] [--dir DIR]``.
Writes a BertForMaskedLM of BERT-base shape (12 layers, hidden 768, intermediate 3072,
vocabulary 30522; ~440 MB) with ``save_pretrained`` (safetensors) and as a
``pytorch_model.bin`` (what the MultiBERTs repositories hold), then times per checkpoint:
reading the weights (both formats), naming the weight groups, and the 14 metrics
(``trainmap.metrics.weights.compute_metrics``), each the median of ``--reps`` repetitions.
Prints the estimate for the paper's MultiBERTs setting (5 seeds x 29 checkpoints)
without the download, which depends on the network (~440 MB per checkpoint).
"""

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from trainmap.checkpoints.read import read_weights, weight_groups
from trainmap.metrics.weights import compute_metrics

# BertConfig's defaults are bert-base-uncased's sizes (transformers documents them so).
BERT_BASE = BertConfig()
MULTIBERTS_CHECKPOINTS = 5 * 29


def timed(fn, reps: int) -> tuple[tuple[float, float], object]:
    """Median wall and process CPU seconds of ``reps`` calls, and the last result (CPU time
    is what a shared machine's load does not inflate)."""
    walls, cpus, result = [], [], None
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return (statistics.median(walls), statistics.median(cpus)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp) / "bert-base"
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = BertForMaskedLM(BERT_BASE)
        model.save_pretrained(folder)
        binary = Path(tmp) / "bin"
        binary.mkdir()
        torch.save(model.state_dict(), binary / "pytorch_model.bin")
        (binary / "config.json").write_text((folder / "config.json").read_text())
        del model
        size = (folder / "model.safetensors").stat().st_size / 1e6
        read_st, _ = timed(lambda: read_weights(folder), args.reps)
        read_bin, _ = timed(lambda: read_weights(binary), args.reps)
        groups_s, groups = timed(lambda: weight_groups(binary, "bert", {}), args.reps)
        metrics_s, _ = timed(lambda: compute_metrics(groups), args.reps)
    n = len(groups.matrices)
    shapes = sorted({tuple(m.shape) for m in groups.matrices})
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}")
    print(f"threads: {args.threads}, reps: {args.reps} (medians)")
    print(f"BERT-base: {n} matrices of shapes {shapes}, {size:.0f} MB safetensors")
    for label, (wall, cpu) in [
        ("read safetensors dir (lazy mmap)", read_st),
        ("read pytorch_model.bin dir", read_bin),
        ("read .bin + weight groups", groups_s),
        ("14 metrics (compute_metrics)", metrics_s),
    ]:
        print(f"{label:34s} wall {wall:6.2f} s, CPU {cpu:6.2f} s")
    per = groups_s[1] + metrics_s[1]
    total = MULTIBERTS_CHECKPOINTS * per
    print(
        f"per MultiBERTs checkpoint (read .bin + metrics): {per:.1f} CPU-s; "
        f"5 seeds x 29 = {MULTIBERTS_CHECKPOINTS}: {total / 60:.0f} CPU-min, "
        f"{total / 5 / 60:.0f} min wall as 5 parallel jobs, plus the download"
    )


if __name__ == "__main__":
    main()
