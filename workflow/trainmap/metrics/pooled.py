"""Exact mean, median and population variance of values streamed tensor by tensor.

Used by ``trainmap.metrics.fast`` for the pooled statistics (mean_w, median_w, var_w and
the biases'), so that no concatenated float64 copy of all weights is ever made: the mean
and variance from per-tensor sums (Chan et al.'s pairwise update), the median from a
histogram and a second pass over the same tensors.
"""

import math
import sys

import numpy as np

# Histogram of the pooled values for the exact median: the top 16 bits of the value rounded
# to float32 (sign, 8 exponent bits, 7 mantissa bits: buckets 1/128 of a binade wide).
# Rounding is monotone, so the buckets are value ranges for float64 values too, and float32
# weights need no conversion: their top halves are counted as they lie in memory (a uint16
# view), in bit-pattern order, and the counts are put in value order (PATTERN) once, when
# pass 1 is over, which is cheaper than ordering every value. 2^16 counts (512 KiB) stay in
# cache while a tensor is counted (2^20 did not). Pass 2 keeps more values than with 2^20
# buckets only where many share a value range: BERT-base's 85M weights, 6 values (3 with
# 2^20).
N_BUCKETS = 1 << 16
_TOP = 1 if sys.byteorder == "little" else 0  # which uint16 of a float32 holds its top bits
_BITS = np.arange(N_BUCKETS, dtype=np.int64)
# bit pattern -> rank in value order: negatives (sign bit set) run backwards below the
# positives, -inf's pattern first
RANK = np.where(_BITS >= 0x8000, _BITS ^ 0xFFFF, _BITS ^ 0x8000)
PATTERN = np.argsort(RANK)  # rank -> bit pattern


class Pooled:
    """Mean, median and population variance of all values given, streamed tensor by tensor.

    ``add`` every tensor (pass 1), then, if ``needs_second_pass``, ``collect`` every tensor
    again in any order (pass 2), then ``result``.
    """

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0  # sum of the per-tensor float64 sums
        self.mean = 0.0  # running mean and centred sum of squares (Chan et al.)
        self.m2 = 0.0
        self.nan = False
        self.counts = np.zeros(N_BUCKETS, dtype=np.int64)  # per bit pattern
        # bucket (in value order) -> (values in lower buckets, values in it), after pass 1
        self.wanted: dict[int, tuple[int, int]] | None = None
        self.found: list[np.ndarray] = []

    def add(
        self, x: np.ndarray, original: np.ndarray | None = None, squares: float | None = None
    ) -> None:
        """Pass 1. x: float64 values, any shape; original: the same values in their own
        float32 or float64 array, if at hand (saves a conversion); squares: x's sum of
        squares in float64, if already computed (saves a pass)."""
        original = x if original is None else original
        x = x.reshape(-1)
        n = x.size
        if n == 0:
            return
        total = float(x.sum())
        mean = total / n
        if not math.isfinite(total):  # inf or NaN: the variance is NaN, the median maybe
            self.nan |= bool(np.isnan(x).any())
            m2 = math.nan
        else:
            squares = float(x @ x) if squares is None else squares
            m2 = squares - total * mean
            if not squares <= 4.0 * m2:  # the shortcut would lose more than 2 bits: 2 passes
                centred = x - mean
                m2 = float(centred @ centred)
        delta = mean - self.mean
        both = self.n + n
        self.mean += delta * n / both
        self.m2 += m2 + delta * delta * self.n * n / both
        self.n = both
        self.total += total
        self.counts += np.bincount(_top_bits(original), minlength=N_BUCKETS)

    @property
    def needs_second_pass(self) -> bool:
        return self.n > 0 and not self.nan

    def _targets(self) -> dict[int, tuple[int, int]]:
        """bucket -> (values in lower buckets, values in it), for the middle ranks' buckets."""
        if self.wanted is None:
            ranked = self.counts[PATTERN]
            upto = np.cumsum(ranked)
            buckets = {int(np.searchsorted(upto, r, side="right")) for r in self._ranks()}
            self.wanted = {b: (int(upto[b] - ranked[b]), int(ranked[b])) for b in sorted(buckets)}
        return self.wanted

    def _ranks(self) -> tuple[int, int]:
        """0-based ranks of the lower and upper middle values (equal for odd counts)."""
        return (self.n - 1) // 2, self.n // 2

    def collect(self, x: np.ndarray) -> None:
        """Pass 2: keep the values of x (float32 or float64) in the middle ranks' buckets."""
        # the one or two buckets wanted, as bit patterns: any bucket between them is empty
        # (the two middle ranks are adjacent), so comparing with each is enough
        bits = _top_bits(x)
        first, *other = (int(PATTERN[bucket]) for bucket in self._targets())
        keep = bits == first
        for pattern in other:
            keep |= bits == pattern
        self.found.append(x.reshape(-1)[keep].astype(np.float64))

    def result(self) -> list[float]:
        """[mean, median, variance]; NaN if nothing was added (the median is NaN if any
        value is NaN, as torch.median)."""
        if self.n == 0:
            return [math.nan] * 3
        mean = self.total / self.n
        if not math.isfinite(mean):
            return [mean, math.nan if self.nan else self._median(), math.nan]
        return [mean, self._median() if not self.nan else math.nan, self.m2 / self.n]

    def _median(self) -> float:
        """NumPy's median: the mean of the two middle order statistics, in float64."""
        values = np.sort(np.concatenate(self.found)) if self.found else np.empty(0)
        wanted = self._targets().values()
        middle = []
        for rank in self._ranks():
            offset = 0  # where each wanted bucket starts among the sorted collected values
            for below, count in wanted:
                if below <= rank < below + count:
                    middle.append(values[offset + rank - below])
                    break
                offset += count
        if len(middle) != 2 or values.size != sum(count for _, count in wanted):
            raise RuntimeError("median: the second pass did not see the values of the first")
        return float((middle[0] + middle[1]) / 2.0)


def _top_bits(x: np.ndarray) -> np.ndarray:
    """The top 16 bits of each value's float32 pattern (float64 is rounded first), as a
    uint16 view: the histogram bucket, in bit-pattern order (RANK gives value order)."""
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, still in order
        x32 = x.reshape(-1) if x.dtype == np.float32 else x.reshape(-1).astype(np.float32)
    return x32.view(np.uint16)[_TOP::2]
