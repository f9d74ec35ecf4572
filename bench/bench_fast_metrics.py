"""The fast exact checkpoint metrics (trainmap.checkpoints.stream) against the former path.

Run (one thread unless --threads):
  .venv/bin/python bench/bench_fast_metrics.py bert [--threads T] [--device cpu|cuda] [--repeat R]
      [--format safetensors|bin]
  .venv/bin/python bench/bench_fast_metrics.py pythia --size 410m [--checkpoints 3] [--old]
  .venv/bin/python bench/bench_fast_metrics.py pythia --size 1b --checkpoints 1
  .venv/bin/python bench/bench_fast_metrics.py sketch

``bert`` writes a BertForMaskedLM of BERT-base shape (seeded random weights,
``save_pretrained``, safetensors) and measures, each in its own subprocess: a process that
only imports torch (the RSS baseline), the former path (whole state dict, float64 SVDs:
``reference_metrics`` of tests/reference_metrics.py since issue 32, where it became the tests'
oracle) and the new one (``trainmap.checkpoints.stream.series_metrics``), one checkpoint
each, ``--repeat`` times alternately (medians reported): CPU seconds, wall seconds and peak
RSS (VmHWM, see ``peak_rss_mib``), and the largest difference per metric against the
tolerances of ``trainmap.metrics.fast.TOLERANCES``.
``pythia`` writes a GPT-NeoX series of Pythia-410M or -1B shape (float16, as the Pythia
checkpoints on the Hub) and measures the new path per checkpoint (``--old`` adds today's,
in its own process), with a projection to a PolyPythias seed (154 checkpoints).
``--format bin`` measures both on a ``pytorch_model.bin`` of the same tensors instead
(torch.save's format, what the MultiBERTs repositories hold).
``--device cuda`` computes the spectra on the GPU (the pooled statistics stay on the host).
``sketch`` measures the opt-in sketched spectra against the exact ones on the matrix shapes
of Pythia-410M and -1B and on 16384 x 4096 (Pythia-6.9B's MLP, where the sketch is meant to
pay; seeded random N(0, 0.02) weights rounded to float16).
"""

import argparse
import json
import math
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLYPYTHIAS_CHECKPOINTS = 154
MULTIBERTS_CHECKPOINTS = 5 * 29
PYTHIA = {  # sizes of EleutherAI/pythia-410m and -1b (config.json)
    "410m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                 intermediate_size=4096),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=8,
               intermediate_size=8192),
}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    """One measurement in this process: print a JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    out: dict = {}
    if args.how != "baseline":
        from trainmap.checkpoints.stream import series_metrics

        rows, cpus, walls = [], [], []
        for step, path in enumerate(args.paths):
            wall, cpu = time.perf_counter(), time.process_time()
            if args.how == "old":
                rows.append(former_metrics(Path(path)))
            else:
                table, _ = series_metrics(
                    {step: path}, False, None, {}, torch.device(args.device), args.threads
                )
                rows.append(table.drop(columns="step").iloc[0].to_dict())
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        out.update(cpu=cpus, wall=walls, metrics=rows)
    out["maxrss_mb"] = peak_rss_mib()
    print(json.dumps(out))


def former_metrics(path: Path) -> dict:
    """The path before issue 19: the whole state dict, the family's rule, float64 SVDs."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from reference_metrics import reference_metrics

    from trainmap.checkpoints.read import model_config, read_weights
    from trainmap.metrics.families import FAMILIES

    config = model_config(path)
    return reference_metrics(FAMILIES[config["model_type"]](read_weights(path), config))


def peak_rss_mib() -> float:
    """This process's peak resident set (MiB): Linux's VmHWM, which starts afresh at exec.
    (``ru_maxrss`` does not: a child started by fork + exec inherits the parent's peak, so
    a child of this bench, which held the model it saved, would report at least that.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(how: str, paths: list[Path], threads: int, device: str) -> dict:
    command = [sys.executable, __file__, "_child", how, *map(str, paths)]
    command += ["--threads", str(threads), "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{how} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worst_differences(new: dict, old: dict) -> tuple[str, bool]:
    """'metric: difference' of the metric with the largest relative difference; whether
    every metric is within its tolerance (trainmap.metrics.fast.TOLERANCES)."""
    from trainmap.metrics.fast import out_of_tolerance

    diffs = {
        name: abs(new[name] - old[name]) / abs(old[name])
        for name in old
        if old[name] and not (math.isnan(old[name]) or math.isnan(new[name]))
    }
    worst = max(diffs, key=diffs.get)
    return f"{worst} {diffs[worst]:.1e} relative", not out_of_tolerance(new, old)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(args: argparse.Namespace) -> None:
    import os

    import torch

    print(f"{platform.machine()} {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"load average {os.getloadavg()}; threads {args.threads}; device {args.device}")


def bert(args: argparse.Namespace, tmp: Path) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp / "bert-base"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig())  # the defaults are BERT-base's sizes
    model.save_pretrained(folder)
    del model
    size = weights_file(folder, args.format).stat().st_size / 2**20
    base = measure("baseline", [], args.threads, args.device)["maxrss_mb"]
    # interleaved runs: a shared machine's load drifts, and both paths then see the same
    news, olds = [], []
    for _ in range(args.repeat):
        news.append(measure("new", [folder], args.threads, args.device))
        if not args.new_only:
            olds.append(measure("old", [folder], args.threads, args.device))
    new = summary(news)
    header(args)
    if args.new_only:  # e.g. to compare thread counts
        print(f"new: CPU {new['cpu']:.2f} s ({new['runs']}), wall {new['wall']:.2f} s, peak "
              f"RSS {new['maxrss_mb']:.0f} MiB (baseline {base:.0f} MiB)")  # fmt: skip
        return
    old = summary(olds)
    print(f"BERT-base save_pretrained: {size:.0f} MiB {args.format}; baseline (import torch) "
          f"RSS {base:.0f} MiB; medians of {args.repeat} interleaved runs each")  # fmt: skip
    for label, m in (("former (float64 SVDs)", old), ("new (series_metrics)", new)):
        above = m["maxrss_mb"] - base
        print(f"{label:26s} CPU {m['cpu']:6.2f} s ({m['runs']})  wall {m['wall']:6.2f} s  "
              f"peak RSS {m['maxrss_mb']:5.0f} MiB ({above:5.0f} above baseline, "
              f"{above / size:.2f}x the checkpoint)")  # fmt: skip
    text, ok = worst_differences(new["metrics"], old["metrics"])
    print(f"speed-up {old['cpu'] / new['cpu']:.2f}x (CPU); largest difference: {text}; "
          f"every metric within its tolerance: {ok}")  # fmt: skip
    per = new["cpu"]
    print(
        f"MultiBERTs, {MULTIBERTS_CHECKPOINTS} checkpoints x {per:.2f} CPU-s = "
        f"{MULTIBERTS_CHECKPOINTS * per / 60:.1f} CPU-min (today's: "
        f"{MULTIBERTS_CHECKPOINTS * old['cpu'] / 60:.1f}), from {args.format} files"
    )
    speedup, memory = old["cpu"] / per, (new["maxrss_mb"] - base) / size
    print(f"targets (issue 19): <= 4 CPU-s {per <= 4.0}, >= 3.5x {speedup >= 3.5}, "
          f"RSS above baseline <= 1.5x the checkpoint {memory <= 1.5}")  # fmt: skip
    # Memory and exactness do not depend on the machine's load: asserted here (CPU time is
    # reported, not asserted, as it does).
    if memory > 1.5 or not ok:
        sys.exit(f"FAILED: peak RSS {memory:.2f}x the checkpoint (<= 1.5x), within tolerance {ok}")


def weights_file(folder: Path, format: str) -> Path:
    """The folder's weights file in ``format``: save_pretrained's model.safetensors, or a
    pytorch_model.bin of the same tensors in its place (torch.save's zip format, what the
    MultiBERTs repositories hold), read by torch.load(mmap=True)."""
    file = folder / "model.safetensors"
    if format == "safetensors":
        return file
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(file), folder / "pytorch_model.bin")
    file.unlink()
    return folder / "pytorch_model.bin"


def summary(runs: list[dict]) -> dict:
    """Median CPU and wall seconds of one-checkpoint runs, every run's CPU seconds, the
    largest peak RSS, the first run's metrics (every run computes the same)."""
    cpus = [run["cpu"][0] for run in runs]
    return dict(
        cpu=statistics.median(cpus),
        wall=statistics.median(run["wall"][0] for run in runs),
        runs=" ".join(f"{c:.2f}" for c in cpus),
        maxrss_mb=max(run["maxrss_mb"] for run in runs),
        metrics=runs[0]["metrics"][0],
    )


def pythia(args: argparse.Namespace, tmp: Path) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=50304, **PYTHIA[args.size])
    paths = []
    for step in range(args.checkpoints):
        folder = tmp / f"seed0/step{step}"
        with torch.random.fork_rng():
            torch.manual_seed(step)
            torch.set_default_dtype(torch.float16)  # built in float16: half the memory
            try:
                model = GPTNeoXForCausalLM(config)
            finally:
                torch.set_default_dtype(torch.float32)
        model.save_pretrained(folder)
        del model
        size = weights_file(folder, args.format).stat().st_size / 2**20
        paths.append(folder)
    base = measure("baseline", [], args.threads, args.device)["maxrss_mb"]
    new = measure("new", paths, args.threads, args.device)
    old = measure("old", paths[:1], args.threads, args.device) if args.old else None
    header(args)
    print(f"Pythia-{args.size}-shaped GPT-NeoX (float16): {size:.0f} MiB a checkpoint "
          f"({args.format}); "
          f"baseline RSS {base:.0f} MiB")  # fmt: skip
    above = new["maxrss_mb"] - base
    cpus = ", ".join(f"{c:.2f}" for c in new["cpu"])
    print(f"new: CPU-s per checkpoint {cpus}; peak RSS {new['maxrss_mb']:.0f} MiB "
          f"({above:.0f} above baseline, {above / size:.2f}x a checkpoint)")  # fmt: skip
    per = sum(new["cpu"]) / len(new["cpu"])
    print(
        f"PolyPythias seed ({POLYPYTHIAS_CHECKPOINTS} checkpoints): "
        f"{POLYPYTHIAS_CHECKPOINTS * per / 60:.1f} CPU-min, downloads not included"
    )
    if old is not None:
        text, ok = worst_differences(new["metrics"][0], old["metrics"][0])
        print(
            f"today: CPU {old['cpu'][0]:.2f} s, peak RSS {old['maxrss_mb']:.0f} MiB; "
            f"speed-up {old['cpu'][0] / new['cpu'][0]:.2f}x; {text}; within tolerance: {ok}"
        )
        if not ok:
            sys.exit("FAILED: a metric outside its tolerance of today's value")
    if above / size > 1.5:
        sys.exit(f"FAILED: peak RSS {above / size:.2f}x a checkpoint above baseline (<= 1.5x)")


def sketch(args: argparse.Namespace) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from trainmap.metrics.fast import _spectrum_values, singular_values_cpu
    from trainmap.metrics.sketched import sketched_spectrum

    header(args)
    print("shape, CPU-s exact (Gram) / sketched, relative error of the sketched "
          "spectral, mean_lambda, variance_lambda")  # fmt: skip
    gen = np.random.default_rng(0)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for m, n in [(1024, 1024), (4096, 1024), (2048, 2048), (8192, 2048), (16384, 4096)]:
            w = (gen.standard_normal((m, n)) * 0.02).astype(np.float16).astype(np.float64)
            cpu = time.process_time()
            s, _ = singular_values_cpu(w)
            exact = _spectrum_values(s, 0.0)
            t_exact = time.process_time() - cpu
            cpu = time.process_time()
            estimate = sketched_spectrum(w)
            t_sketch = time.process_time() - cpu
            errors = [
                abs(estimate[i] - exact[j]) / abs(exact[j]) for i, j in ((0, 0), (1, 2), (2, 3))
            ]
            print(f"{m} x {n}: {t_exact:.2f} / {t_sketch:.2f} CPU-s; "
                  + ", ".join(f"{e:.1e}" for e in errors))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["bert", "pythia", "sketch", "_child"])
    parser.add_argument("how", nargs="?", choices=["baseline", "old", "new"])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=sorted(PYTHIA), default="410m")
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--old", action="store_true", help="pythia: also today's path")
    parser.add_argument("--new-only", action="store_true", help="bert: only the new path")
    parser.add_argument("--repeat", type=int, default=3, help="bert: runs of each path")
    parser.add_argument("--format", choices=["safetensors", "bin"], default="safetensors",
                        help="bert, pythia: the checkpoints' weights file")  # fmt: skip
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default tmp)")
    args = parser.parse_args()
    if args.what == "_child":
        return child(args)
    if args.what == "sketch":
        return sketch(args)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        (bert if args.what == "bert" else pythia)(args, tmp)
    finally:
        shutil.rmtree(tmp)  # big checkpoints: never leave them behind


if __name__ == "__main__":
    main()
