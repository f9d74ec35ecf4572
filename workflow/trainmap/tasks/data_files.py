"""Where the data sets' files live under a ``data_root``, checked without importing torch.

Config validation calls ``require`` so that a missing data set stops the workflow before
any job with the root and the files it looks for, instead of a traceback from inside
torchvision; the loaders (``trainmap.tasks.images``) find their files with ``locate``.
"""

from pathlib import Path

from trainmap.errors import ConfigError

# Training and test examples of the data sets whose size the config alone does not give.
MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000
CIFAR100_TRAIN_SIZE = 50_000
# MNIST's IDX files are accepted in torchvision's layout (what download: true writes,
# <root>/MNIST/raw/<name>) or directly in the root, uncompressed or gzipped (as LeCun's
# site and ../shared/data/mnist ship them).
MNIST_LAYOUTS = ("MNIST/raw/{}", "{}", "{}.gz")
# torchvision's CIFAR100 reads these (and checks their md5 sums).
CIFAR100_FILES = {name: [f"cifar-100-python/{name}"] for name in ("train", "test", "meta")}
# The masked LM's tokenizer: these specials, in this order, take ids 0..4.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def mnist_files(splits: tuple[str, ...]) -> dict[str, list[str]]:
    """IDX file name -> accepted paths, for MNIST splits ``train`` and/or ``t10k``."""
    names = [f"{split}-{kind}" for split in splits for kind in ("images-idx3", "labels-idx1")]
    return {
        f"{name}-ubyte": [layout.format(f"{name}-ubyte") for layout in MNIST_LAYOUTS]
        for name in names
    }


def locate(root: str | Path, candidates: list[str]) -> Path | None:
    """The first of ``candidates`` (paths relative to ``root``) that is a file, else None."""
    for candidate in candidates:
        path = Path(root) / candidate
        if path.is_file():
            return path
    return None


def require(files: dict[str, list[str]], root: str | Path, where: str) -> dict[str, Path]:
    """Every file of ``files`` located under ``root``; a missing one raises ConfigError.

    files: name -> accepted relative paths. The message names the resolved root, every
    missing file with the paths tried, and how to get the data (``download: true``).
    """
    found = {name: locate(root, paths) for name, paths in files.items()}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        tried = "; ".join(f"{name} (as {' or '.join(files[name])})" for name in missing)
        raise ConfigError(
            f"{where}: {str(Path(root).resolve())!r} lacks the data set's files: {tried}. "
            "Set download: true where a network exists, or point data_root at the files."
        )
    return found  # type: ignore[return-value]


def is_local_file(value: str, suffix: str) -> bool:
    """A value that ends in ``suffix`` or names an existing file is a local file; any
    other value is a name on the Hugging Face hub."""
    return value.endswith(suffix) or Path(value).is_file()


def is_local_corpus(corpus: str) -> bool:
    """A corpus is a local text file when it ends in .txt or exists, else a hub dataset."""
    return is_local_file(corpus, ".txt")
