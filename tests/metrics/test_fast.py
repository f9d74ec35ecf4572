"""The one metrics engine (trainmap.metrics.fast behind trainmap.metrics.weights, and
trainmap.checkpoints.stream) against the float64 SVD oracle (tests/reference_metrics.py),
within the per-metric tolerances of TOLERANCES."""

import logging
import math

import numpy as np
import pytest
import torch
from reference_metrics import reference_metrics
from transformers import BertConfig, BertForMaskedLM, GPTNeoXConfig, GPTNeoXForCausalLM

from trainmap.checkpoints.pages import MappedFile
from trainmap.checkpoints.read import CheckpointError, read_weights
from trainmap.checkpoints.stream import checkpoint_metrics, series_metrics
from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics import pooled as pooled_module
from trainmap.metrics.families import FAMILIES, bert_encoder_groups
from trainmap.metrics.fast import (
    _host_part,
    _spectra_torch,
    gram_is_precise,
    metrics_of_layers,
    out_of_tolerance,
    singular_values_cpu,
)
from trainmap.metrics.pooled import RANK, STRIDE, Pooled, _top_bits
from trainmap.metrics.weights import WeightGroups, compute_metrics
from trainmap.tasks.registry import get_task

CPU = torch.device("cpu")


def assert_within_tolerances(got: dict, want: dict) -> None:
    """Every metric within TOLERANCES (relative, or relative to the pooled values' RMS)."""
    assert not out_of_tolerance(got, want)


def orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q


def with_spectrum(m: int, n: int, s: list[float], gen: torch.Generator) -> torch.Tensor:
    """A float64 (m, n) matrix with singular values s (len min(m, n))."""
    p = min(m, n)
    return (
        orthogonal(m, gen)[:, :p]
        @ torch.diag(torch.tensor(s, dtype=torch.float64))
        @ (orthogonal(n, gen)[:p])
    )


def shape_classes() -> dict[str, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)

    def randn(*shape, scale=0.02):
        return torch.randn(*shape, generator=gen) * scale

    low_rank = randn(300, 12, scale=1.0) @ randn(12, 200, scale=0.1)
    floor = [1.0] * 20 + [1e-5 * (1 + 1e-6), 1e-5 * (1 - 1e-6)] + [0.3] * 18
    return {
        "square": [randn(256, 256) for _ in range(3)],
        "wide": [randn(64, 512), randn(64, 512)],
        "tall": [randn(700, 96)],
        "vector-like (one singular value)": [randn(50, 1), randn(1, 50)],
        "rank-deficient": [low_rank, low_rank.T.contiguous()],
        "a singular value at the floor (float64)": [with_spectrum(60, 40, floor, gen)],
        "ill-conditioned, kappa 1e4 (float64)": [
            with_spectrum(80, 80, np.logspace(0, -4, 80).tolist(), gen)
        ],
        "huge scale": [randn(128, 128, scale=1e4), randn(128, 40, scale=1e4)],
        "tiny scale (every value below the floor)": [randn(128, 128, scale=1e-9)],
        "mixed shapes": [randn(32, 32), randn(128, 32), randn(32, 128), randn(5, 7)],
    }


@pytest.mark.parametrize("label", list(shape_classes()))
def test_fast_equals_the_reference_on_every_shape_class(label):
    matrices = shape_classes()[label]
    gen = torch.Generator().manual_seed(1)
    biases = [torch.randn(17, generator=gen), torch.randn(8, generator=gen) * 3]
    groups = WeightGroups(matrices=matrices, weights=matrices, biases=biases)
    assert_within_tolerances(compute_metrics(groups), reference_metrics(groups))


def test_the_floor_sends_a_straddling_matrix_to_the_svd_and_others_not():
    classes = shape_classes()
    report = {}
    groups = WeightGroups(classes["a singular value at the floor (float64)"])
    metrics_of_layers(lambda: [groups], report=report)
    assert report == {"matrices": 1, "svd_fallbacks": 1}
    groups = WeightGroups(classes["square"] + classes["tall"] + classes["rank-deficient"])
    metrics_of_layers(lambda: [groups], report=report)
    assert report == {"matrices": 6, "svd_fallbacks": 0}


def test_precision_check_refuses_an_interval_across_the_floor_and_a_loose_bound():
    # sqrt(1e-10) = 1e-5 itself, with an error bound from the large value
    assert not gram_is_precise(np.array([1e-10, 1.0]), fro2=1.0 + 1e-10, k=10)
    assert gram_is_precise(np.array([0.04, 1.0]), fro2=1.04, k=10)
    # a bound that allows more than 1e-9 relative on mean_lambda
    assert not gram_is_precise(np.array([1e-6, 1.0]), fro2=1e8, k=10**6)
    assert not gram_is_precise(np.array([np.nan, 1.0]), fro2=1.0, k=10)


def test_gram_path_matches_the_svd_on_cpu_and_in_torch():
    gen = torch.Generator().manual_seed(2)
    matrices = [torch.randn(96, 64, generator=gen).double().numpy() for _ in range(2)]
    matrices.append(torch.randn(40, 90, generator=gen).double().numpy())
    on_device = _spectra_torch([torch.from_numpy(w) for w in matrices], CPU)
    for wd, (s_torch, gram_torch) in zip(matrices, on_device, strict=True):
        s_cpu, gram_cpu = singular_values_cpu(wd)
        reference = np.linalg.svd(wd, compute_uv=False)
        assert gram_cpu and gram_torch
        np.testing.assert_allclose(s_cpu, reference, rtol=1e-10)
        np.testing.assert_allclose(s_torch, reference, rtol=1e-10)


def exact_median(tensors: list[torch.Tensor]) -> float:
    return float(np.median(np.concatenate([t.double().numpy().ravel() for t in tensors])))


@pytest.mark.parametrize(
    "values",
    [
        [[3.0, 1.0, 2.0]],  # odd
        [[4.0, 1.0], [3.0, 2.0]],  # even, the middle two in different tensors
        [[0.5] * 7, [0.5, 2.0]],  # ties
        [[-0.0, 0.0, -1e-30, 1e-30]],  # signed zeros and tiny values
        [[-3.0, -2.0, -1.0, -1.5]],  # negatives only
        [[1.0, 1.0 + 2**-23, 1.0 + 2**-22, 7.0]],  # neighbours in one bucket
        [[-1.0, -2.0], [2.0, 1.0]],  # the middle two on either side of zero
    ],
)
def test_median_is_exact_over_tensors(values):
    tensors = [torch.tensor(v, dtype=torch.float32) for v in values]
    groups = WeightGroups([], weights=tensors, biases=tensors)
    got = compute_metrics(groups)
    assert got["median_w"] == exact_median(tensors) == reference_metrics(groups)["median_w"]


def pooled_median(arrays: list[np.ndarray]) -> tuple[float, int, Pooled]:
    """The median by Pooled's passes; the number of passes after the first."""
    pooled, passes = Pooled(), 0
    for a in arrays:
        pooled.add(a.astype(np.float64), a)
    while pooled.needs_pass:
        for a in arrays:
            pooled.collect(a)
        pooled.end_pass()
        passes += 1
    return pooled.result()[1], passes, pooled


@pytest.mark.parametrize(
    "make",
    [
        lambda gen: [gen.standard_normal(20_000).astype(np.float32) * 0.02 for _ in range(5)],
        lambda gen: [gen.standard_normal(30_001).astype(np.float32) + 3.0],  # odd, offset
        lambda gen: [np.where(gen.random(40_000) < 0.6, 0.0, gen.standard_normal(40_000))
                     .astype(np.float32)],  # pruned: the median is one of many zeros
        lambda gen: [gen.standard_normal(25_000), gen.standard_normal(25_000).astype(np.float32)
                     - 1e-3],  # float64 and float32 together
        lambda gen: [np.round(gen.standard_normal(50_000) * 4).astype(np.float32) / 8],  # ties
    ],
)  # fmt: skip
def test_median_from_the_sampled_interval_is_exact(make):
    arrays = make(np.random.default_rng(11))
    got, passes, pooled = pooled_median(arrays)
    assert got == np.median(np.concatenate([a.astype(np.float64) for a in arrays]))
    low, high = pooled.interval
    assert passes == 1 and math.isfinite(low) and math.isfinite(high)  # a bounded interval


def test_median_when_the_sample_misses_takes_two_more_passes(caplog):
    """Every sampled value (each STRIDE-th) far from the rest, more of them below than
    above: the sample's interval lies below the middle values, and the histogram passes
    (which must not count the sample again) find them exactly."""
    gen = np.random.default_rng(12)
    arrays = []
    for size, far in ((STRIDE * 800, -5.0), (STRIDE * 300 + 7, 5.0)):
        a = gen.standard_normal(size).astype(np.float32) * 0.01
        a[::STRIDE] = far + gen.random(a[::STRIDE].size).astype(np.float32)
        arrays.append(a)
    with caplog.at_level(logging.INFO, logger="trainmap.metrics.pooled"):
        got, passes, _ = pooled_median(arrays)
    want = np.median(np.concatenate(arrays).astype(np.float64))
    assert got == want and passes == 3 and "two more passes" in caplog.text
    tensors = [torch.from_numpy(a) for a in arrays]  # the same through metrics_of_layers
    assert compute_metrics(WeightGroups([], weights=tensors))["median_w"] == want


def test_median_when_the_samples_interval_holds_too_many_values(monkeypatch, caplog):
    """Sampled values spread wide, the rest packed near zero: the interval holds nearly
    all values, more than pass 2 may keep; the histogram passes find the median."""
    monkeypatch.setattr(pooled_module, "KEEP_AT_LEAST", 1000)
    gen = np.random.default_rng(13)
    a = gen.standard_normal(STRIDE * 1000).astype(np.float32) * 0.01
    a[::STRIDE] = gen.uniform(-1000.0, 1000.0, 1000).astype(np.float32)
    pooled = Pooled()
    pooled.add(a.astype(np.float64), a)
    pooled.collect(a)
    assert sum(f.size for f in pooled.found) <= pooled.room < pooled.inside
    with caplog.at_level(logging.INFO, logger="trainmap.metrics.pooled"):
        pooled.end_pass()
    assert "more than the" in caplog.text and pooled.stage == "histogram"
    assert pooled_median([a])[:2] == (np.median(a.astype(np.float64)), 3)


def test_pooled_statistics_of_many_tensors_and_dtypes():
    gen = torch.Generator().manual_seed(3)
    tensors = [torch.randn(1000, generator=gen) * 0.02 + 1e-4 for _ in range(5)]
    tensors += [torch.randn(333, generator=gen, dtype=torch.float64) + 5.0]  # offset: 2 passes
    tensors += [torch.randn(64, generator=gen).half()]
    groups = WeightGroups([], weights=tensors, biases=[torch.full((9,), 0.25)])
    got, want = compute_metrics(groups), reference_metrics(groups)
    assert_within_tolerances(got, want)
    assert got["var_b"] == 0.0 and got["median_b"] == 0.25  # a constant bias, exactly


def test_histogram_buckets_are_in_value_order():
    """Sorting by bucket must never put a larger value before a smaller one: for float32
    values of both signs, zeros, extremes and infinities, and for float64 values (rounded)."""
    gen = np.random.default_rng(5)
    x = gen.standard_normal(20000) * 10.0 ** gen.integers(-40, 39, 20000)
    x = np.concatenate([x, [0.0, -0.0, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45, -1e-45]])
    for values in (x.astype(np.float32), x, x * 1e10):  # the last beyond float32's range
        rank = RANK[_top_bits(values)]
        order = np.lexsort((values, rank))
        assert np.all(np.diff(values[order]) >= 0)


def test_pooled_nan_gives_nan_and_nothing_gives_nan():
    pooled = Pooled()
    pooled.add(np.array([1.0, np.nan, 2.0]))
    assert all(math.isnan(v) for v in pooled.result())
    assert all(math.isnan(v) for v in Pooled().result())


def test_non_finite_matrix_gives_non_finite_metrics_as_the_reference():
    w = torch.ones(4, 3)
    w[1, 2] = math.inf
    groups = WeightGroups([w, torch.eye(3)], weights=[w], biases=[torch.ones(2)])
    got, want = compute_metrics(groups), reference_metrics(groups)
    for name in METRIC_COLUMNS:
        assert math.isfinite(got[name]) == math.isfinite(want[name]), name


def test_resnet_checkpoint_kernels_and_linear():
    task = get_task("cifar100_resnet18")
    model = task.make_model(task.params())
    groups = model.weight_groups()
    assert groups.kernels
    assert_within_tolerances(compute_metrics(groups), reference_metrics(groups))


@pytest.mark.parametrize("threads", [1, 2])
def test_torch_backend_the_gpu_path_on_the_cpu(threads):
    """The kernels --device cuda runs (batched per shape in torch), here on the CPU."""
    classes = shape_classes()
    matrices = [*classes["square"], *classes["wide"], *classes["vector-like (one singular value)"]]
    matrices += classes["a singular value at the floor (float64)"]
    groups = WeightGroups(matrices, weights=matrices, biases=[torch.linspace(-1, 2, 11)])
    report = {}
    got = metrics_of_layers(lambda: [groups], CPU, threads, report, backend="torch")
    assert_within_tolerances(got, reference_metrics(groups))
    assert report == {"matrices": 8, "svd_fallbacks": 1}


def test_threads_give_the_same_values():
    groups = WeightGroups(sum(shape_classes().values(), []))
    assert compute_metrics(groups, threads=2) == compute_metrics(groups)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    config = BertConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=16,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertForMaskedLM(config)
    with torch.no_grad():  # trained biases are not zero
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    root = tmp_path_factory.mktemp("bert")
    model.save_pretrained(root / "single")
    model.save_pretrained(root / "sharded", max_shard_size="100KB")
    torch.save(model.state_dict(), root / "model.bin")
    # torch < 1.6's format (older hub checkpoints): cannot be mapped, read whole
    torch.save(model.state_dict(), root / "legacy.bin", _use_new_zipfile_serialization=False)
    return root


def test_bert_checkpoint_streamed_equals_the_oracle(bert_dir):
    want = reference_metrics(bert_encoder_groups(read_weights(bert_dir / "single")))
    for where, model in (
        ("single", None), ("sharded", None), ("model.bin", "bert"), ("legacy.bin", "bert")
    ):  # fmt: skip
        got, record = series_metrics({0: str(bert_dir / where)}, False, model, {}, CPU)
        assert list(got.columns) == ["step", *METRIC_COLUMNS]
        assert_within_tolerances(got.iloc[0].to_dict(), want)
        assert record["family"] == "bert" and len(record["matrices"]) == 18


def test_a_mapped_bin_hands_back_each_layers_pages_after_use(bert_dir, monkeypatch):
    released = []
    release = MappedFile.release

    def counting(self, tensors):
        tensors = list(tensors)
        released.append((len(tensors), release(self, tensors)))
        return released[-1][1]

    monkeypatch.setattr(MappedFile, "release", counting)
    checkpoint_metrics(bert_dir / "model.bin", "bert", {}, CPU)
    # 3 layers, read twice (the median's second pass), 8 tensors each (6 matrices, 2 biases)
    assert [count for count, _ in released] == [8] * 6
    assert all(dropped > 0 for _, dropped in released)


def test_gpt_neox_checkpoint_streamed_equals_the_oracle(tmp_path):
    config = GPTNeoXConfig(
        vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        GPTNeoXForCausalLM(config).half().save_pretrained(tmp_path)
    groups = FAMILIES["gpt_neox"](read_weights(tmp_path), {"num_attention_heads": 4})
    want = reference_metrics(groups)
    assert_within_tolerances(checkpoint_metrics(tmp_path, None, {}, CPU), want)


def test_checkpoint_of_another_family_names_the_path(bert_dir):
    with pytest.raises(CheckpointError, match="single.*gpt_neox"):
        checkpoint_metrics(bert_dir / "single", "gpt_neox", {}, CPU)


def test_threads_key_of_a_checkpoint_setting():
    def setting(**extra):
        entry = {"source": "checkpoints", "hub": "o/m-{seed}@{step}", "seeds": [0]}
        config = {"settings": {"s": {**entry, "steps": [1], "model": "bert", **extra}}}
        return validate_config(config, predict_split=False)["s"]  # one seed: no HMM here

    assert setting().threads == 1 and setting(threads=2).threads == 2
    with pytest.raises(ConfigError, match="threads"):
        setting(threads=0)


def test_sketched_spectra_are_estimates_near_the_exact_values():
    gen = torch.Generator().manual_seed(4)
    matrices = [torch.randn(300, 120, generator=gen), torch.randn(150, 150, generator=gen)]
    groups = WeightGroups(matrices, weights=matrices)
    exact, sketched = compute_metrics(groups), compute_metrics(groups, spectra="sketched")
    for name in ("l1", "l2", "trace", "mean_w", "median_w", "var_w"):  # not estimated
        assert sketched[name] == exact[name]
    assert sketched["spectral"] == pytest.approx(exact["spectral"], rel=1e-3)
    assert sketched["mean_lambda"] == pytest.approx(exact["mean_lambda"], rel=2e-2)
    assert sketched["mean_lambda"] != exact["mean_lambda"]  # an estimate, not the value
    assert compute_metrics(groups, spectra="sketched") == sketched  # seeded


def test_metrics_key_of_a_checkpoint_setting():
    def setting(**extra):
        entry = {"source": "checkpoints", "hub": "o/m-{seed}@{step}", "seeds": [0]}
        config = {"settings": {"s": {**entry, "steps": [1], "model": "bert", **extra}}}
        return validate_config(config, predict_split=False)["s"]  # one seed: no HMM here

    assert setting().spectra == "exact"
    assert setting(metrics={"spectra": "sketched"}).spectra == "sketched"
    with pytest.raises(ConfigError, match="spectra"):
        setting(metrics={"spectra": "approximate"})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_matrix_gives_the_same_bits_wherever_it_lies_in_memory(dtype):
    """OpenBLAS sums (dasum: l1) in an order that depends on the address mod 64: the
    same matrix at each offset of a larger buffer must give identical values, as two runs
    whose copies land at different addresses must (a 1-ulp l1 changed a whole map)."""
    rng = np.random.default_rng(0)
    numbers = rng.standard_normal((128, 40)) * 0.1
    buffer = torch.empty(numbers.size + 16, dtype=dtype)
    seen = set()
    for offset in range(16):  # 4- or 8-byte steps through every alignment mod 64
        view = buffer[offset : offset + numbers.size].view(128, 40)
        view.copy_(torch.from_numpy(numbers))
        host = _host_part(view)
        assert host.wd.ctypes.data % 64 == 0
        seen.add(tuple(host.values))
    assert len(seen) == 1, seen
