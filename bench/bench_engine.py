"""The one metrics engine (issue 32): the Recorder against the checkpoint path, and a
Llama-shaped 1B checkpoint through the generic rule.

Run from the repository root (one thread, process CPU time):
  PYTHONPATH=workflow .venv/bin/python bench/bench_engine.py recorder [--reps 5]
  PYTHONPATH=workflow .venv/bin/python bench/bench_engine.py llama [--layers 22]

``recorder``: a BertForMaskedLM of BERT-base shape (seeded random weights, float32), saved
with save_pretrained; then, alternately in one process (the same load for both), one
``Recorder.log`` on the live model (the 14 metrics; no file write) and one checkpoint of the
saved directory through ``trainmap.checkpoints.stream.checkpoint_metrics`` (read layer by
layer). Medians of ``--reps`` after a warm-up of each, and their ratio; the two must agree
to ``TOLERANCES``.
``llama``: a LlamaForCausalLM of TinyLlama-1.1B's shape (hidden 2048, 22 layers, 32 heads,
4 key-value heads, intermediate 5632, vocabulary 32000; bfloat16 safetensors, 2.2 GB),
built layer by layer from seeded random tensors (never whole in memory), then one
checkpoint measured in its own process (``model: auto``: the generic rule on the meta
model): CPU seconds, wall seconds, peak RSS (VmHWM), and a process that only imports what
the path imports as the RSS baseline.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINYLLAMA = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                 max_position_embeddings=2048, tie_word_embeddings=False)  # fmt: skip


def load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), "?")


def peak_rss_mib() -> float:
    """VmHWM: the peak resident set of this process since exec (see bench_fast_metrics)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(fn) -> tuple[float, object]:
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def bench_recorder(reps: int) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from trainmap.checkpoints.stream import checkpoint_metrics
    from trainmap.metrics.fast import out_of_tolerance
    from trainmap.record import Recorder

    torch.set_num_threads(1)
    config = BertConfig()  # BERT-base: 12 layers, 768 / 3072, vocabulary 30522
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp) / "ckpt")
        recorder = Recorder(Path(tmp) / "runs", seed=0, model=model, flush_every=1e9)
        path, cpu = Path(tmp) / "ckpt", torch.device("cpu")
        logs, reads = [], []
        for i in range(reps + 1):  # the first of each: warm-up
            t_log, row = cpu_seconds(lambda i=i: recorder.log(i))
            t_read, metrics = cpu_seconds(lambda: checkpoint_metrics(path, None, {}, cpu))
            if i:
                logs.append(t_log)
                reads.append(t_read)
    assert not out_of_tolerance({k: row[k] for k in metrics}, metrics)
    log_s, read_s = statistics.median(logs), statistics.median(reads)
    print(f"BERT-base, {reps} reps, one thread: Recorder.log {log_s:.2f} CPU-s (runs "
          f"{', '.join(f'{t:.2f}' for t in logs)}), checkpoint path {read_s:.2f} CPU-s (runs "
          f"{', '.join(f'{t:.2f}' for t in reads)}); ratio {log_s / read_s:.2f}x; "
          f"load average after: {load()}")  # fmt: skip


def write_llama(folder: Path, layers: int) -> int:
    """A LlamaForCausalLM checkpoint of TinyLlama's shape, one tensor at a time."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**{**TINYLLAMA, "num_hidden_layers": layers})
    config.architectures = ["LlamaForCausalLM"]
    with torch.device("meta"):
        shapes = {n: tuple(p.shape) for n, p in LlamaForCausalLM(config).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    tensors = {n: (torch.randn(s, generator=gen) * 0.02).bfloat16() for n, s in shapes.items()}
    folder.mkdir(parents=True)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(folder)
    return sum(t.numel() for t in tensors.values())


def child(args) -> None:
    import torch

    torch.set_num_threads(1)
    from trainmap.checkpoints.stream import checkpoint_metrics

    out = {}
    if args.how == "metrics":
        wall, cpu = time.perf_counter(), time.process_time()
        report = {}
        checkpoint_metrics(Path(args.path), None, {}, torch.device("cpu"), report=report)
        out = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
               "matrices": report["matrices"], "fallbacks": report["svd_fallbacks"]}  # fmt: skip
    out["rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


def measure(how: str, path: Path) -> dict:
    command = [sys.executable, __file__, "_child", how, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_llama(layers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "llama"
        n = write_llama(folder, layers)
        size = (folder / "model.safetensors").stat().st_size / 2**20
        print(f"Llama-shaped checkpoint: {layers} layers, {n / 1e9:.2f}B parameters, "
              f"{size:,.0f} MiB bfloat16; load before: {load()}")  # fmt: skip
        base, run = measure("baseline", folder), measure("metrics", folder)
        print(f"one checkpoint, one thread: {run['cpu']:.1f} CPU-s, {run['wall']:.1f} s wall, "
              f"{run['matrices']} matrices ({run['fallbacks']} by SVD); peak RSS "
              f"{run['rss_mib']:,.0f} MiB (imports alone {base['rss_mib']:,.0f} MiB); "
              f"load after: {load()}")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        parser = argparse.ArgumentParser()
        parser.add_argument("how")
        parser.add_argument("path")
        child(parser.parse_args(sys.argv[2:]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["recorder", "llama"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--layers", type=int, default=TINYLLAMA["num_hidden_layers"])
    args = parser.parse_args()
    print(f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs; load {load()}")
    bench_recorder(args.reps) if args.what == "recorder" else bench_llama(args.layers)


if __name__ == "__main__":
    main()
