"""The 14 weight metrics of METHOD.md section 2, exact and fast, for models of any size.

The one engine of every path (``trainmap.metrics.weights`` is its front door): the
definitions of METHOD.md section 2, computed as follows.

- Singular values come from the eigenvalues of the smaller Gram matrix (``W^T W`` or
  ``W W^T``, p x p with p = min(m, n)) in float64: ``sigma_i = sqrt(lambda_i)``. On the CPU
  the Gram matrix is one BLAS ``dsyrk`` (NumPy's ``a.T @ a``) and the eigenvalues LAPACK's
  ``dsytrd`` + ``dsterf`` (``trainmap.metrics.lapack``), both without the GIL, so that
  ``threads`` run matrices in parallel (SciPy's BLAS and LAPACK wrappers hold it:
  measured, two threads ran no faster than one); on another device the same two steps
  run in torch, batched over the matrices of one shape. Both are ~2-3x cheaper than a
  float64 SVD of the same matrix.
- Precision argument, checked per matrix (``gram_is_precise``): products of float32 (or
  float16/bfloat16) entries are exact in float64, so the computed Gram matrix differs from
  the exact one only by summation error, ``||E|| <= u sqrt(k) ||W||_F^2`` in the
  probabilistic model of Higham & Mary (SISC 2019; u = 2^-53, k = max(m, n) terms per
  entry; float64 entries add their products' rounding, a term of the same form), and
  the eigenvalue solver is backward stable, ``|d lambda| <= u p max|lambda|``. With
  ``delta`` their sum every true sigma_i lies in ``[sqrt(lambda_i - delta),
  sqrt(lambda_i + delta)]``. The Gram values are used only where (a) no interval contains
  METHOD.md's 1e-5 floor (values below it are set to 0, so the floor must decide the same
  way for every value the interval allows) and (b) the intervals bound the error of
  spectral, mean_lambda and variance_lambda below ``RTOL`` (1e-9) relative. Otherwise the
  matrix falls back to a float64 SVD (``numpy.linalg.svd`` / ``torch.linalg.svdvals``),
  the reference's own method. The bound is the typical-case one, not the worst case
  (``sqrt(k) u`` instead of ``k u``): the worst case would send every square BERT matrix
  to the SVD although the measured errors there are ~1e-14 (tests/metrics/test_fast.py).
- The pooled statistics stream: exact mean and population variance from per-tensor float64
  sums and centred sums of squares (Chan et al.'s pairwise update; a tensor's centred sum
  is ``sum x^2 - n mean^2`` where that loses at most 2 bits, i.e. mean^2 <= 3 var, else
  a second pass over the tensor), and the exact median from a second pass that counts
  the values below an interval and keeps those in it, the interval taken from a histogram
  of a sample's float32 bit patterns; where the middle values are not in it, two more
  passes (a histogram of all values, then the one or two buckets holding the middle order
  statistics; ``trainmap.metrics.pooled``). No float64 copy of all weights, no buffer of
  them either.
- A model can arrive layer by layer (``metrics_of_layers``), so a checkpoint never has to
  be in memory whole (``trainmap.checkpoints.stream`` reads it so).

Tolerances against a float64 SVD computation of the same definitions (the former
``compute_metrics``, tests/reference_metrics.py; ``TOLERANCES``, tested): l1, l2, code_sparsity,
trace, spectral, computational_sparsity, mean_lambda, variance_lambda, var_w, var_b: 1e-9
relative (the per-matrix ones are guarded by the check above; sums differ only in
summation order, ~1e-15). median_w, median_b: equal (the same two order statistics, averaged
the same way). mean_w, mean_b: 1e-9 relative or 1e-12 of the pooled values' root mean
square, whichever is larger: a mean of symmetric weights is a sum that cancels to ~1e-4 of
its terms, where any two summation orders differ by more than 1e-9 of the result.
Non-finite weights give non-finite metrics where the reference gives them (NaN vs inf may
differ); ``diverged`` only asks for finiteness.
"""

import functools
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from scipy.linalg import blas
from threadpoolctl import ThreadpoolController

from trainmap.io.columns import METRIC_COLUMNS
from trainmap.metrics.groups import SINGULAR_VALUE_FLOOR, WeightGroups, kernel_metrics
from trainmap.metrics.lapack import gram_eigenvalues
from trainmap.metrics.pooled import Pooled
from trainmap.metrics.sketched import sketched_spectrum

SPECTRA = ("exact", "sketched")  # metrics: {spectra: ...}; sketched is opt-in (estimates)
UNIT_ROUNDOFF = 2.0**-53  # float64
RTOL = 1e-9
# metric -> (relative tolerance, tolerance relative to the pooled values' RMS) vs the float64
# SVD reference
TOLERANCES = {name: (RTOL, 0.0) for name in METRIC_COLUMNS}
TOLERANCES.update({"median_w": (0.0, 0.0), "median_b": (0.0, 0.0)})
TOLERANCES.update({"mean_w": (RTOL, 1e-12), "mean_b": (RTOL, 1e-12)})


def out_of_tolerance(got: dict[str, float], want: dict[str, float]) -> list[str]:
    """One message per metric of ``got`` outside its TOLERANCES around ``want`` (e.g.
    a float64 oracle's values); empty when every metric is within. NaN matches only NaN."""
    messages = []
    for name, (rtol, rms_tol) in TOLERANCES.items():
        a, b = got[name], want[name]
        if math.isnan(a) or math.isnan(b):
            if math.isnan(a) != math.isnan(b):
                messages.append(f"{name}: {a!r} vs {b!r}")
            continue
        pooled = "_w" if name.endswith("_w") else "_b"
        rms = math.sqrt(abs(want["var" + pooled]) + want["mean" + pooled] ** 2)
        allowed = max(rtol * abs(b), rms_tol * rms if math.isfinite(rms) else 0.0)
        if not abs(a - b) <= allowed:
            messages.append(f"{name}: {a!r} vs {b!r} (allowed {allowed:.1e})")
    return messages


def gram_error_bound(lam: np.ndarray, fro2: float, k: int) -> float:
    """delta: the bound on |computed - true| eigenvalue of a Gram matrix (see module doc).

    lam: (p,) computed eigenvalues; fro2: ||W||_F^2; k: the number of terms per entry.
    """
    p = lam.shape[-1]
    return UNIT_ROUNDOFF * (math.sqrt(k) * fro2 + p * float(np.abs(lam).max(initial=0.0)))


def gram_is_precise(lam: np.ndarray, fro2: float, k: int, rtol: float = RTOL) -> bool:
    """Whether the singular values sqrt(lam) give spectral, mean_lambda and variance_lambda
    to ``rtol`` relative with the 1e-5 floor decided the same way as exact values would.

    lam: (p,) eigenvalues of the Gram matrix, any order; fro2, k: as gram_error_bound.
    """
    if not np.isfinite(lam).all() or not math.isfinite(fro2):
        return False
    delta = gram_error_bound(lam, fro2, k)
    s = np.sqrt(np.clip(lam, 0.0, None))
    hi = np.sqrt(lam + delta)
    lo = np.sqrt(np.clip(lam - delta, 0.0, None))
    floor = SINGULAR_VALUE_FLOOR
    if np.any((lo < floor) & (hi >= floor)):
        return False  # the floor may cut a value the exact spectrum keeps, or vice versa
    kept = lo >= floor
    err = np.where(kept, np.maximum(hi - s, s - lo), 0.0)  # floored values are 0 either way
    floored = np.where(kept, s, 0.0)
    top = int(np.argmax(s))
    if err[top] > rtol * s[top] and s[top] > 0:
        return False
    if err.sum() > rtol * floored.sum():
        return False
    if s.shape[-1] > 1:  # d var / d sigma_i = 2 (sigma_i - mean) / p, plus the second order
        spread = np.abs(floored - floored.mean())
        var_err = 2.0 * (spread * err).mean() + 2.0 * (err * err).mean()
        if var_err > rtol * floored.var():
            return False
    return True


def singular_values_cpu(wd: np.ndarray, fro2: float | None = None) -> tuple[np.ndarray, bool]:
    """(singular values, descending; whether the Gram path was precise) of a float64 matrix.

    wd: (m, n) C-contiguous float64, finite; fro2: its ||W||_F^2, if already computed.
    NumPy computes ``a.T @ a`` (one buffer, transposed) as BLAS ``dsyrk``: half the flops
    of a general product (measured: 3072 x 768, 48 ms against 82 ms for a copy's product).
    """
    m, n = wd.shape
    gram = wd.T @ wd if m >= n else wd @ wd.T
    try:
        lam = gram_eigenvalues(gram)  # ascending; overwrites gram
    except np.linalg.LinAlgError:  # dsterf did not converge: the SVD below
        lam = np.full(min(m, n), math.nan)
    if fro2 is None:
        flat = wd.reshape(-1)
        fro2 = float(flat @ flat)
    if gram_is_precise(lam, fro2, max(m, n)):
        return np.sqrt(np.clip(lam[::-1], 0.0, None)), True
    return np.linalg.svd(wd, compute_uv=False), False


def _spectrum_values(s: np.ndarray, trace: float) -> list[float]:
    """spectral, computational_sparsity, mean_lambda, variance_lambda of singular values s."""
    spectral = float(s[0])
    lam = np.where(s < SINGULAR_VALUE_FLOOR, 0.0, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        sparsity = np.float64(trace) / np.float64(spectral)
    return [spectral, float(sparsity), float(lam.mean()), float(lam.var())]


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    """The values of a tensor as a float32 or float64 NumPy array (a view where it can)."""
    t = t.detach().cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()  # float16/bfloat16: exact in float32
    return t.numpy()


# OpenBLAS's kernels (dasum for l1 among them) sum in an order that depends on the data's
# address modulo 64 bytes, and a copy lands wherever the allocator puts it, run to run: the
# same weights gave l1 values 1 ulp apart, and a map that was not bit-reproducible.
ALIGNMENT = 64


def _as_float64(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous float64 NumPy copy of a CPU tensor (a view for float64 input already
    so), at an address that is a multiple of ALIGNMENT bytes."""
    a = _as_numpy(t)
    if a.dtype == np.float64 and a.flags.c_contiguous and a.ctypes.data % ALIGNMENT == 0:
        return a
    buffer = np.empty(a.size + ALIGNMENT // 8, dtype=np.float64)
    start = (-buffer.ctypes.data % ALIGNMENT) // 8  # NumPy's buffers are 16-byte aligned
    out = buffer[start : start + a.size].reshape(a.shape)
    out[...] = a
    return out


def _ratio(a: float, b: float) -> float:
    """a / b with IEEE semantics (0/0 and inf/inf are NaN, as in torch)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


class _Host(NamedTuple):
    """What the host computes of one matrix before its spectrum."""

    wd: np.ndarray  # float64 copy (a view for float64 input)
    values: list[float]  # l1, l2, code_sparsity, trace
    fro2: float  # ||W||_F^2: reused by the precision check and the pooled variance

    @property
    def finite(self) -> bool:
        return math.isfinite(self.values[0])


def _host_part(w: torch.Tensor) -> _Host:
    if w.ndim != 2:
        raise ValueError(f"matrices must be 2-D, got shape {tuple(w.shape)}")
    wd = _as_float64(w)
    flat = wd.reshape(-1)
    l1 = float(blas.dasum(flat))  # one pass, no |w| temporary; all terms >= 0: no cancelling
    fro2 = float(flat @ flat)
    l2 = math.sqrt(fro2)
    trace = float(np.trace(wd))  # main diagonal, square or not
    return _Host(wd, [l1, l2, _ratio(l1, l2), trace], fro2)


def _spectra_cpu(host: _Host) -> tuple[np.ndarray | None, bool]:
    return singular_values_cpu(host.wd, host.fro2) if host.finite else (None, True)


def _spectra_torch(
    matrices: list[torch.Tensor], device: torch.device
) -> list[tuple[np.ndarray, bool]]:
    """singular_values_cpu's result for each matrix, computed on ``device`` in torch from
    the tensors as they are (a model's on its own GPU: no copy there and back).

    One Gram product and one batched ``eigvalsh`` per shape (wide stacks transposed to
    tall), the precision check on the host, ``svdvals`` for the matrices it refuses.
    """
    out: list[tuple[np.ndarray, bool] | None] = [None] * len(matrices)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, w in enumerate(matrices):
        by_shape.setdefault(tuple(w.shape), []).append(i)
    for (m, n), indices in by_shape.items():
        x = torch.stack([matrices[i].detach() for i in indices]).to(device, torch.float64)
        x = x.mT if m < n else x  # tall: (b, k, p)
        lam = torch.linalg.eigvalsh(x.mT @ x)  # ascending, (b, p)
        fro2 = torch.linalg.vector_norm(x, dim=(-2, -1)).square()
        lam_host, fro2_host = lam.cpu().numpy(), fro2.cpu().numpy()
        refused = [j for j in range(len(indices)) if not gram_is_precise(
            lam_host[j], float(fro2_host[j]), max(m, n))]  # fmt: skip
        svd = torch.linalg.svdvals(x[refused]).cpu().numpy() if refused else None
        for j, i in enumerate(indices):
            if j in refused:
                out[i] = (svd[refused.index(j)], False)
            else:
                out[i] = (np.sqrt(np.clip(lam_host[j][::-1], 0.0, None)), True)
    return out  # type: ignore[return-value]


def _matrix_rows(
    matrices: list[torch.Tensor],
    device: torch.device,
    pool: ThreadPoolExecutor | None,
    backend: str,
    spectra: str = "exact",
) -> Iterable[tuple[np.ndarray, _Host, bool]]:
    """Per matrix: its 8 values, its _Host part and whether the Gram path held. Lazy
    with one thread, so one float64 copy at a time is alive."""
    mapper = pool.map if pool is not None else map
    hosts = mapper(_host_part, matrices)
    if spectra == "sketched":  # estimates (trainmap.metrics.sketched), on the host
        for host in hosts:
            estimates = sketched_spectrum(host.wd) if host.finite else [math.nan] * 3
            spectral, mean, variance = estimates
            row = [*host.values, spectral, _ratio(host.values[3], spectral), mean, variance]
            yield np.array(row), host, True
        return
    if backend == "torch":
        hosts = list(hosts)
        finite = [w for w, h in zip(matrices, hosts, strict=True) if h.finite]
        spectra = iter(_spectra_torch(finite, device))
        for host in hosts:
            s, gram = next(spectra) if host.finite else (None, True)
            yield _row(host.values, s), host, gram
        return
    if pool is not None:
        hosts = list(hosts)  # keep the order; the spectra below run in parallel
        for host, (s, gram) in zip(hosts, pool.map(_spectra_cpu, hosts), strict=True):
            yield _row(host.values, s), host, gram
        return
    for host in hosts:
        s, gram = _spectra_cpu(host)
        yield _row(host.values, s), host, gram


def _row(values: list[float], s: np.ndarray | None) -> np.ndarray:
    """The 8 matrix metrics; s None: a non-finite matrix (NaN spectrum, as the reference)."""
    spectrum = _spectrum_values(s, values[3]) if s is not None else [math.nan] * 4
    return np.array([*values, *spectrum])


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once: ``threadpool_limits`` reads
    /proc/self/maps at every call (3 ms, more than a small model's metrics)."""
    return ThreadpoolController()


def metrics_of_layers(
    layers: Callable[[], Iterable[WeightGroups]],
    device: torch.device | str = "cpu",
    threads: int = 1,
    report: dict[str, int] | None = None,
    backend: str | None = None,
    spectra: str = "exact",
) -> dict[str, float]:
    """The 14 metrics of a model whose weight groups arrive in parts.

    layers: called once, twice (the median's second pass) or, rarely, four times; each
    call yields the model's WeightGroups in parts (e.g. one transformer layer each; the
    same parts every time). Per-matrix metrics are averaged over all parts' matrices;
    pooled statistics over all parts' weights and biases. device: where the spectra are
    computed (CPU: NumPy; else torch on that device). threads: matrices computed in
    parallel (BLAS itself is held to one thread per worker). report: if given, gets ``matrices`` and
    ``svd_fallbacks`` (matrices the precision check sent to the SVD). backend: ``numpy``
    or ``torch`` for the spectra; default NumPy on the CPU (OpenBLAS's float64 products
    ran ~2x MKL's on the AMD CPU measured), torch on any other device. spectra:
    ``exact``, or ``sketched`` for estimates of spectral, mean_lambda and variance_lambda
    (``trainmap.metrics.sketched``; opt-in, never the default).
    """
    if spectra not in SPECTRA:
        raise ValueError(f"spectra {spectra!r} is not one of {', '.join(SPECTRA)}")
    device = torch.device(device)
    backend = backend or ("numpy" if device.type == "cpu" else "torch")
    if backend not in ("numpy", "torch") or (backend == "numpy" and device.type != "cpu"):
        raise ValueError(f"backend {backend!r} cannot compute on device {device}")
    totals = _Totals()
    with _blas().limit(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        for groups in layers():
            rows = _matrix_rows(
                groups.matrices, device, pool if threads > 1 else None, backend, spectra
            )
            totals.add(groups, rows)
        _median_passes(layers, totals.weights, totals.biases)
    if report is not None:
        report.update(matrices=totals.n_matrices, svd_fallbacks=totals.fallbacks)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = totals.sums / totals.counts  # nothing counted: 0/0 -> NaN
    row = [*means.tolist(), *totals.weights.result(), *totals.biases.result()]
    return dict(zip(METRIC_COLUMNS, row, strict=True))


class _Totals:
    """What metrics_of_layers sums over the parts: the 8 per-matrix metrics and their
    counts, the pooled weights and biases, matrices seen and SVD fallbacks."""

    def __init__(self) -> None:
        self.sums, self.counts = np.zeros(8), np.zeros(8)
        self.weights, self.biases = Pooled(), Pooled()
        self.n_matrices = self.fallbacks = 0

    def add(self, groups: WeightGroups, rows: list) -> None:
        """One part: its matrices' rows (from _matrix_rows), kernels, weights and biases.
        A matrix that is also a pooled weight gives the pool its float64 copy (and its
        squared norm) once per time it is listed."""
        in_weights = [id(t) for t in groups.weights]
        pooled_done = set()
        for w, (row, host, gram) in zip(groups.matrices, rows, strict=True):
            # one singular value has no variance: skipped for variance_lambda
            counted = np.arange(8) < (7 if min(host.wd.shape) == 1 else 8)
            self.sums += np.where(counted, row, 0.0)
            self.counts += counted
            self.n_matrices += 1
            self.fallbacks += not gram
            if id(w) in in_weights and id(w) not in pooled_done:
                for _ in range(in_weights.count(id(w))):
                    self.weights.add(host.wd, _as_numpy(w), host.fro2)
                pooled_done.add(id(w))
        for kernel in groups.kernels:
            values, counted = (v[:, 0].numpy() for v in kernel_metrics(kernel.cpu()))
            self.sums += values
            self.counts += counted
        for t in groups.weights:
            if id(t) not in pooled_done:
                self.weights.add(_as_float64(t))
        for t in groups.biases:
            self.biases.add(_as_float64(t))


def _median_passes(layers: Callable[[], Iterable[WeightGroups]], weights, biases) -> None:
    """The pooled medians' further passes over the parts, while a pool needs one."""
    while busy := [p for p in (weights, biases) if p.needs_pass]:
        for groups in layers():
            for pooled, tensors in ((weights, groups.weights), (biases, groups.biases)):
                if pooled in busy:
                    for t in tensors:
                        pooled.collect(_as_numpy(t))
        for pooled in busy:
            pooled.end_pass()
