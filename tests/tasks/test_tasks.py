"""The data-set tasks (mnist_mlp, cifar100_resnet18, masked_lm), offline on a CPU.

MNIST reads the shipped test split (../shared/data/mnist) through torchvision's IDX
readers, CIFAR-100 is replaced by torchvision's FakeData, the masked LM trains a tiny BERT
on Tiny Shakespeare (../shared/data/text). Metrics of the saved final weights are checked
against METHOD.md's formulas written out in NumPy over tensors picked by name.
"""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO
from oracle import numpy_metrics
from safetensors.numpy import load_file

from trainmap.config.settings import validate_config
from trainmap.errors import ConfigError
from trainmap.io.columns import METRIC_COLUMNS, RUN_COLUMNS
from trainmap.io.files import write_parquet
from trainmap.tasks.params import parse_params
from trainmap.tasks.registry import get_task
from trainmap.training.common import generator
from trainmap.training.loop import save_weights, train

DATA = REPO.parent / "shared" / "data"
MNIST_DIR = DATA / "mnist"
TEXT = DATA / "text" / "tinyshakespeare.txt"

TINY = {
    "mnist_mlp": {
        "data_root": str(MNIST_DIR),
        "train_from_test": 300,
        "n_eval": 200,
        "n_train_eval": 100,
        "hidden": [24, 16],
        "batch_size": 64,
        "epochs": 2,
        "eval_every": 2,
    },
    # Full-size ResNet18 on a CPU: one step, two checkpoints.
    "cifar100_resnet18": {
        "fake_images": 4,
        "n_eval": 4,
        "n_train_eval": 4,
        "batch_size": 4,
        "eval_batch_size": 4,
        "epochs": 1,
        "eval_every": 1,
    },
    "masked_lm": {
        "corpus": str(TEXT),
        "vocab_size": 200,
        "max_length": 16,
        "layers": 2,
        "hidden": 16,
        "heads": 2,
        "intermediate": 32,
        "n_train": 48,
        "n_eval": 16,
        "n_train_eval": 16,
        "batch_size": 16,
        "epochs": 2,
        "eval_every": 2,
        "lr": 0.003,
    },
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread, as the training jobs use: on a busy 2-core machine a second thread
    makes the full-size ResNet18 slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may reach the network: the HF libraries are told so."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def params(task_name: str, **overrides):
    values = {**TINY[task_name], "device": "cpu", **overrides}
    return parse_params(get_task(task_name).params, values, f"settings.{task_name}")


def run(task_name: str, seed: int, **overrides) -> tuple[pd.DataFrame, dict]:
    return train(get_task(task_name), params(task_name, **overrides), seed)


@pytest.fixture(scope="module")
def tiny_runs() -> dict:
    """Seed 1 of each task at TINY, trained once for the tests of this module."""
    cache: dict = {}

    def get(task_name: str) -> tuple[pd.DataFrame, dict]:
        if task_name not in cache:
            cache[task_name] = run(task_name, seed=1)
        return cache[task_name]

    return get


def written(tmp_path, name: str, table: pd.DataFrame, weights: dict) -> tuple[bytes, bytes]:
    """The bytes of the run's metrics.parquet and model.safetensors as the workflow writes."""
    write_parquet(table, tmp_path / f"{name}.parquet")
    save_weights(weights, tmp_path / f"{name}.safetensors")
    return (tmp_path / f"{name}.parquet").read_bytes(), (
        tmp_path / f"{name}.safetensors"
    ).read_bytes()


@pytest.mark.parametrize("task_name", sorted(TINY))
def test_task_trains_and_reproduces_bytes(task_name, tiny_runs, tmp_path):
    """A few steps give a valid metrics table; the same seed gives identical files."""
    table, weights = tiny_runs(task_name)
    again = written(tmp_path, "again", *run(task_name, seed=1))
    assert written(tmp_path, "first", table, weights) == again
    assert list(table.columns) == ["step", *RUN_COLUMNS, *METRIC_COLUMNS, "diverged"]
    assert table["step"].iloc[0] == 0 and table["step"].is_monotonic_increasing
    assert len(table) >= 2
    assert np.isfinite(table[["train_loss", "eval_loss", *METRIC_COLUMNS[:-3]]]).all().all()
    assert table[["train_accuracy", "eval_accuracy"]].stack().between(0, 1).all()
    assert not table["diverged"].any()
    assert table["l2"].iloc[-1] != table["l2"].iloc[0]  # the weights moved


@pytest.mark.parametrize("task_name", ["mnist_mlp", "masked_lm"])
def test_task_learns(task_name, tiny_runs):
    table, _ = tiny_runs(task_name)
    assert len(table) >= 3
    assert table["train_loss"].iloc[-1] < table["train_loss"].iloc[0]


def test_mnist_reads_the_shipped_test_split_through_torchvision():
    """train_from_test splits the 10k images: disjoint parts, real digits, scaled pixels."""
    from trainmap.tasks.mnist_mlp.task import make_data

    data = make_data(params("mnist_mlp", n_eval=0, n_train_eval=0), generator("data", 0))
    assert data.train_x.shape == (300, 784) and data.eval_x.shape == (9700, 784)
    assert data.train_x.dtype == torch.float32
    assert 0 <= data.train_x.min() and data.train_x.max() == 1.0
    assert sorted(torch.cat([data.train_y, data.eval_y]).bincount().tolist())[0] > 800
    train_rows = {tuple(row) for row in data.train_x[:50].tolist()}
    assert not train_rows & {tuple(row) for row in data.eval_x.tolist()}


def test_mnist_also_reads_torchvision_layout(tmp_path):
    """Plain IDX files under <root>/MNIST/raw (what download: true writes) read the same."""
    import gzip

    from trainmap.tasks.images import read_mnist

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes()))
    images, labels = read_mnist(tmp_path, "t10k")
    shipped_images, shipped_labels = read_mnist(MNIST_DIR, "t10k")
    assert images.shape == (10000, 28, 28) and torch.equal(images, shipped_images)
    assert torch.equal(labels, shipped_labels)


def test_checkpoint_scores_fixed_subsets():
    """Eval and train-loss subsets are the same for every seed and of the asked size."""
    from trainmap.tasks.mnist_mlp.task import make_data

    p = params("mnist_mlp")
    first, second = make_data(p, generator("data", 0)), make_data(p, generator("data", 7))
    assert first.probe_x.shape == (100, 784) and first.eval_x.shape == (200, 784)
    assert torch.equal(first.probe_x, second.probe_x) and torch.equal(first.eval_y, second.eval_y)
    assert {tuple(r) for r in first.probe_x.tolist()} <= {tuple(r) for r in first.train_x.tolist()}


def oracle_resnet(tensors: dict[str, np.ndarray]) -> dict[str, float]:
    """METHOD.md for ResNet18, tensors picked by name: 3x3 kernels, the fc layer."""
    convs = [t for name, t in sorted(tensors.items()) if t.ndim == 4]
    kernels = [t for t in convs if t.shape[-2:] == (3, 3)]
    fc = tensors["fc.weight"]
    return numpy_metrics([fc], kernels, [*convs, fc], [tensors["fc.bias"]])


BERT_MATRIX = re.compile(
    r"bert\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)\.weight"
)
BERT_BIAS = re.compile(r"bert\.encoder\.layer\.\d+\.(intermediate|output)\.dense\.bias")


def oracle_bert(tensors: dict[str, np.ndarray]) -> dict[str, float]:
    """METHOD.md for a BERT encoder: whole Q, K, V, attention-output, intermediate and
    output matrices of every layer; biases = intermediate and output dense biases."""
    matrices = [t for name, t in tensors.items() if BERT_MATRIX.fullmatch(name)]
    biases = [t for name, t in tensors.items() if BERT_BIAS.fullmatch(name)]
    assert len(matrices) == 6 * TINY["masked_lm"]["layers"] and len(biases) == 4
    return numpy_metrics(matrices, [], matrices, biases)


@pytest.mark.parametrize(
    ("task_name", "oracle"),
    [("cifar100_resnet18", oracle_resnet), ("masked_lm", oracle_bert)],
)
def test_final_metrics_equal_method_formulas_on_saved_weights(
    task_name, oracle, tiny_runs, tmp_path
):
    table, weights = tiny_runs(task_name)
    save_weights(weights, tmp_path / "model.safetensors")
    expected = oracle(load_file(tmp_path / "model.safetensors"))
    last = table.iloc[-1]
    for key in METRIC_COLUMNS:
        assert last[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key


def norm_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    kinds = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm)
    return [m for m in model.modules() if isinstance(m, kinds)]


def test_batch_norm_switch_removes_every_normalisation_layer():
    from trainmap.tasks.cifar100_resnet18.model import CifarResNet18

    assert len(norm_layers(CifarResNet18(batch_norm=True))) == 20
    model = CifarResNet18(batch_norm=False)
    assert norm_layers(model) == []
    assert not any("bn" in name or "running" in name for name in model.state_dict())
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_residual_switch_leaves_only_the_conv_path(batch_norm):
    """Without residuals each block's output is relu(bn2(conv2(relu(bn1(conv1(x)))))) and
    nothing of x passes around it; with them, x is added before the last relu."""
    from trainmap.tasks.cifar100_resnet18.model import CifarResNet18

    x = torch.randn(2, 64, 8, 8, generator=generator("x", 0))
    for residual in (False, True):
        model = CifarResNet18(batch_norm=batch_norm, residual=residual).eval()
        model.reset_parameters(generator("init", 0))
        block = model.layer1[0]
        with torch.no_grad():
            inner = torch.relu(block.bn1(block.conv1(x)))
            conv_path = block.bn2(block.conv2(inner))
            out = block(x)
        if residual:
            torch.testing.assert_close(out, torch.relu(conv_path + x))
            assert not torch.allclose(out, torch.relu(conv_path))
        else:
            assert torch.equal(out, torch.relu(conv_path))
            assert all(b.downsample is None for b in model.blocks())
            assert not any("downsample" in name for name in model.state_dict())


def test_crop_and_flip_move_pixels_only():
    """Each augmented image is a 32x32 window of the reflect-padded image, maybe mirrored."""
    from trainmap.tasks.images import random_crop_flip

    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    x = x.repeat(16, 1, 1, 1)
    out = random_crop_flip(x, generator("batch", 0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    for image, source in zip(out, padded, strict=True):
        windows = [source[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
        windows += [w.flip(-1) for w in windows]
        assert any(torch.equal(image, w) for w in windows)
    assert not torch.equal(out, x)  # 32 draws: something moved
    again = random_crop_flip(x, generator("batch", 0))
    assert torch.equal(out, again)


def test_masking_follows_bert():
    """15% of non-special tokens chosen; of those ~80% [MASK], ~10% random, ~10% kept."""
    from trainmap.tasks.masked_lm.task import IGNORE, MASK_ID, N_SPECIAL, mask_tokens

    p = params("masked_lm")
    ids = torch.randint(N_SPECIAL, p.vocab_size, (400, 64), generator=generator("ids", 0))
    ids[:, 0] = 2  # [CLS]: never chosen
    inputs, labels = mask_tokens(p, ids, generator("batch", 0))
    chosen = labels != IGNORE
    assert not chosen[:, 0].any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    assert chosen[:, 1:].float().mean().item() == pytest.approx(0.15, abs=0.005)
    masked = (inputs[chosen] == MASK_ID).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.02) and kept == pytest.approx(
        0.1 + 0.1 / 195, abs=0.02
    )


def test_tokenizer_file_is_reproducible_and_used(tmp_path):
    """train_tokenizer's file is the same twice; the data made with it equals the data
    made with a tokenizer trained in memory."""
    from trainmap.tasks.masked_lm.corpus import build_tokenizer

    for name in ("a.json", "b.json"):
        build_tokenizer(str(TEXT), 0.1, 200, tmp_path / name)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    make_data = get_task("masked_lm").make_data
    with_file = make_data(params("masked_lm", tokenizer=str(tmp_path / "a.json")), None)
    without = make_data(params("masked_lm"), None)
    for name in ("train_x", "eval_x", "eval_y", "probe_x", "probe_y"):
        assert torch.equal(getattr(with_file, name), getattr(without, name)), name


def setting(task: str, **keys) -> dict:
    entry = {"source": "train", "task": task, "seeds": 2, **keys}
    entry["convergence"] = {"column": "eval_accuracy", "threshold": 0.5}
    return {"settings": {"images": entry}}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("mnist_mlp", r"train-images-idx3-ubyte \(as MNIST/raw/train-images-idx3-ubyte or"),
        ("cifar100_resnet18", r"train \(as cifar-100-python/train\)"),
    ],
)
def test_missing_data_is_a_config_error_naming_root_and_files(task, expected, tmp_path):
    root = tmp_path / "no_data_here"
    with pytest.raises(
        ConfigError, match=rf"settings\.images\.data_root: '{root}' lacks .*{expected}"
    ):
        validate_config(setting(task, data_root=str(root)))
    validate_config(setting(task, data_root=str(root), download=True))  # fetched at run time


def test_offline_example_config_validates_from_the_repository_root(monkeypatch):
    """config/mnist_offline.yaml's data_root (../shared/data/mnist) is relative to the
    repository root, where its comment says to run it."""
    from trainmap.config.settings import load_yaml

    monkeypatch.chdir(REPO)
    settings = validate_config(load_yaml(REPO / "config" / "mnist_offline.yaml"))
    assert settings["mnist_offline"].params["train_from_test"] == 8000


def test_missing_data_at_run_time_names_the_root(tmp_path):
    """A loader called directly (data gone after validation) names the root too."""
    p = get_task("cifar100_resnet18").params(data_root=str(tmp_path))  # not validated
    with pytest.raises(ConfigError, match=str(tmp_path)):
        get_task("cifar100_resnet18").make_data(p, generator("data", 0))


def test_relative_data_root_resolves_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=str(tmp_path / "data" / "mnist")):
        validate_config(setting("mnist_mlp", data_root="data/mnist"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(MNIST_DIR)
    validate_config(setting("mnist_mlp", data_root="data/mnist", train_from_test=5000))


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"hidden": []}, r"hidden: expected"),
        ({"hidden": [800, 0]}, r"hidden: \[800, 0\] is out of range; allowed: >= 1"),
        ({"hidden": [1.5]}, r"hidden: expected"),
        ({"train_from_test": 10000}, r"train_from_test: 10000 is out of range; allowed: in \[0, "),
        ({"n_eval": -1}, r"n_eval: -1 is out of range; allowed: >= 0"),
    ],
)
def test_bad_image_keys_name_key_and_value(keys, message):
    keys = {"data_root": str(MNIST_DIR), "train_from_test": 100, **keys}
    with pytest.raises(ConfigError, match=r"settings\.images\." + message):
        validate_config(setting("mnist_mlp", **keys))


def test_missing_corpus_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"settings\.images\.corpus: no text file .*nope\.txt"):
        validate_config(setting("masked_lm", corpus=str(tmp_path / "nope.txt")))


def test_downloads_take_turns_and_failures_name_the_root(tmp_path):
    """Concurrent jobs of settings sharing a data_root download one after another (a file
    lock); a failed download names the data set and the root."""
    import threading

    from trainmap.tasks.images import downloading

    order = []

    def second_job():
        with downloading("MNIST", tmp_path):
            order.append("second")

    with downloading("MNIST", tmp_path):
        thread = threading.Thread(target=second_job)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # waiting for the lock
        order.append("first")
    thread.join(timeout=5)
    assert order == ["first", "second"]
    with pytest.raises(RuntimeError, match=rf"'{tmp_path}': downloading CIFAR-100 failed"):
        with downloading("CIFAR-100", tmp_path):
            raise OSError("no network")


def test_a_tokenizer_with_other_ids_is_renumbered(tmp_path):
    """A BERT-style tokenizer whose specials are not 0..4 (bert-base-uncased's: [PAD] 0,
    [UNK] 100, ...) gets them there in the model's ids; other ids keep their order."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from trainmap.tasks.masked_lm.corpus import canonical_ids, load_tokenizer
    from trainmap.tasks.masked_lm.task import blocks

    pieces = ["be", "not", "or", "to", "##s", "a"]
    order = [*pieces[:2], "[PAD]", *pieces[2:4], "[UNK]", "[CLS]", "[SEP]", "[MASK]", *pieces[4:]]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(order)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokenizer.save(str(tmp_path / "other.json"))
    loaded = load_tokenizer(str(tmp_path / "other.json"))
    mapping = canonical_ids(loaded)
    assert [mapping[order.index(t)] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [
        0, 1, 2, 3, 4,
    ]  # fmt: skip
    assert [mapping[order.index(t)] for t in pieces] == [5, 6, 7, 8, 9, 10]
    block = blocks(loaded, ["to be or not to be as"], 9)
    expected = [pieces.index(t) + 5 for t in ("to", "be", "or", "not", "to", "be", "a", "##s")]
    assert block.tolist() == [[2, *expected[:7], 3]]


def test_a_tokenizer_without_mask_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    from trainmap.tasks.masked_lm.corpus import load_tokenizer

    Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).save(
        str(tmp_path / "t.json")
    )
    with pytest.raises(ValueError, match=r"t\.json'.*missing: \['\[PAD\]', '\[CLS\]'"):
        load_tokenizer(str(tmp_path / "t.json"))


def test_an_unreachable_hub_tokenizer_is_named(monkeypatch):
    """Offline, a hub tokenizer name fails at once with its name (no traceback hunt)."""
    import huggingface_hub.constants

    from trainmap.tasks.masked_lm.corpus import load_tokenizer

    # HF_HUB_OFFLINE=1 as huggingface_hub read it at import: without it an unreachable hub
    # costs five retries (~23 s) before the same error.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(ValueError, match="tokenizer 'bert-base-uncased': no such file, and no"):
        load_tokenizer("bert-base-uncased")
