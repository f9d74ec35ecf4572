"""Exact mean, median and population variance of values streamed tensor by tensor.

Used by ``trainmap.metrics.fast`` for the pooled statistics (mean_w, median_w, var_w and
the biases'), so that no concatenated float64 copy of all weights is ever made: the mean
and variance from per-tensor sums (Chan et al.'s pairwise update), the median from a
second pass over the same tensors that counts the values below a value interval and keeps
those in it.

The interval comes from pass 1's histogram of a sample (every ``STRIDE``-th value), wide
enough that the middle order statistics lie in it unless the sample is far from typical.
Pass 2 checks that they do (it counts exactly), so the median is exact either way; where
they do not, two more passes find it as before: a histogram of all values, then the one or
two buckets that hold the middle ranks. Counting every value in pass 1 cost ~3 ns a
value (``np.bincount``: 0.28 of ~3.5 CPU-s for BERT-base), the sample ~1/60 of that.
A small model's values (``KEEP_SMALL`` in all) are kept in pass 1 and the median selected
from them directly: the same two order statistics, no second pass.
"""

import logging
import math
import sys

import numpy as np

log = logging.getLogger(__name__)

# Histogram buckets: the top 16 bits of the value rounded to float32 (sign, 8 exponent
# bits, 7 mantissa bits: buckets 1/128 of a binade wide). Rounding is monotone, so the
# buckets are value ranges for float64 values too, and float32 weights need no conversion:
# their top halves are counted as they lie in memory (a uint16 view), in bit-pattern
# order, and the counts are put in value order (PATTERN) once, when a pass is over. 2^16
# counts (512 KiB) stay in cache while a tensor is counted.
N_BUCKETS = 1 << 16
_TOP = 1 if sys.byteorder == "little" else 0  # which uint16 of a float32 holds its top bits
_BITS = np.arange(N_BUCKETS, dtype=np.int64)
# bit pattern -> rank in value order: negatives (sign bit set) run backwards below the
# positives, -inf's pattern first
RANK = np.where(_BITS >= 0x8000, _BITS ^ 0xFFFF, _BITS ^ 0x8000)
PATTERN = np.argsort(RANK)  # rank -> bit pattern
# Pass 1 counts every STRIDE-th value of each tensor: a prime, so that the rows of a
# matrix (lengths of 2^k or 3 x 2^k) do not put every sampled value in the same columns.
STRIDE = 61
# The interval spans the middle ranks' sample ranks +- SIGMAS standard deviations of a
# random sample's median (sqrt(m) / 2 for m sampled values), plus SLACK sampled values.
SIGMAS = 6.0
SLACK = 16
# Pass 2 keeps at most KEEP_AT_MOST times the values a typical sample's interval holds,
# and at least KEEP_AT_LEAST: a sample far from typical could give an interval holding
# most values, and keeping them would be the float64 copy of all weights this module avoids.
KEEP_AT_MOST = 4
KEEP_AT_LEAST = 1 << 20
# Up to this many values in all, pass 1 keeps a float64 copy of them and the median is
# selected from it: no further pass (a small model's histogram and second pass cost more
# than the copy: 0.5 against 2 ms a checkpoint for the 40-128-1 parity MLP).
KEEP_SMALL = 1 << 14
# Pass 1's sampled bit patterns are counted in batches of at least this many (one
# np.bincount over 2^16 buckets per tensor cost more than the counting for small tensors).
COUNT_BATCH = 1 << 20


class Pooled:
    """Mean, median and population variance of all values given, streamed tensor by tensor.

    ``add`` every tensor (pass 1); then, while ``needs_pass``, ``collect`` every tensor
    again in any order and call ``end_pass``; then ``result``.
    """

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0  # sum of the per-tensor float64 sums
        self.mean = 0.0  # running mean and centred sum of squares (Chan et al.)
        self.m2 = 0.0
        self.nan = False
        self.counts = np.zeros(N_BUCKETS, dtype=np.int64)  # per bit pattern
        self.sampled = 0  # values sampled in pass 1
        self.samples: list[np.ndarray] = []  # sampled bit patterns not yet in counts
        self.kept: list[np.ndarray] | None = []  # every value while n <= KEEP_SMALL, else None
        # what collect does: "interval" (pass 2), then only if the middle ranks were not in
        # it "histogram" and "buckets" (the passes of the exact two-pass method), "done"
        self.stage = "interval"
        self.interval: tuple[float, float] | None = None  # pass 2's [low, high]
        self.below = 0  # values below the interval (pass 2)
        self.inside = 0  # values in it
        # bucket (in value order) -> (values in lower buckets, values in it), for "buckets"
        self.wanted: dict[int, tuple[int, int]] = {}
        self.found: list[np.ndarray] = []
        self.median = math.nan

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
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged run: inf - inf
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
        if self.kept is not None and self.n <= KEEP_SMALL:
            self.kept.append(np.array(x, dtype=np.float64))  # a copy: x may be a view
        else:
            self.kept = None
        sample = _sample_bits(original)
        self.samples.append(sample)
        self.sampled += sample.size
        if sum(s.size for s in self.samples) >= COUNT_BATCH:
            self._count_samples()

    def _count_samples(self) -> None:
        """Add the sampled bit patterns of pass 1 so far to ``counts``."""
        if self.samples:
            self.counts += np.bincount(np.concatenate(self.samples), minlength=N_BUCKETS)
            self.samples = []

    @property
    def needs_pass(self) -> bool:
        """Whether the median needs another pass (never where pass 1 kept every value)."""
        return self.n > 0 and not self.nan and self.stage != "done" and self.kept is None

    @property
    def half_width(self) -> float:
        """Half the interval's width, in sampled values (see SIGMAS)."""
        return SIGMAS * math.sqrt(self.sampled) / 2.0 + SLACK

    @property
    def room(self) -> int:
        """How many values in the interval pass 2 may keep (see KEEP_AT_MOST)."""
        typical = 2.0 * self.half_width * self.n / self.sampled
        return max(int(KEEP_AT_MOST * typical), KEEP_AT_LEAST)

    def collect(self, x: np.ndarray) -> None:
        """A later pass over x (float32 or float64), as ``stage`` says."""
        if self.stage == "interval":
            if self.interval is None:
                self.interval = self._interval()
            low, high = self.interval
            x = x.reshape(-1)
            below = x < low
            self.below += int(np.count_nonzero(below))
            keep = x <= high
            keep ^= below  # below implies keep (low <= high): this clears it
            kept = x[keep]
            self.inside += kept.size
            if self.inside <= self.room:
                self.found.append(kept.astype(np.float64))
            else:  # too many: the histogram passes instead (end_pass)
                self.found = []
        elif self.stage == "histogram":
            self.counts += np.bincount(_top_bits(x), minlength=N_BUCKETS)
        elif self.stage == "buckets":
            # the one or two buckets wanted, as bit patterns: any bucket between them is
            # empty (the two middle ranks are adjacent), so comparing with each is enough
            bits = _top_bits(x)
            first, *other = (int(PATTERN[bucket]) for bucket in self.wanted)
            keep = bits == first
            for pattern in other:
                keep |= bits == pattern
            self.found.append(x.reshape(-1)[keep].astype(np.float64))

    def end_pass(self) -> None:
        """After every tensor was collected once: the median, or the next pass's stage."""
        if self.stage == "interval":
            if self.inside > self.room:
                why = f"held {self.inside} values, more than the {self.room} it may keep"
            elif not self._median_from([(self.below, self.inside)]):
                why = "missed the middle values"
            else:
                return
            log.info(
                "median of %d values: the interval the sample gave, %s, %s; two more passes",
                self.n, self.interval, why,
            )  # fmt: skip
            self.counts[:] = 0
            self.found, self.stage = [], "histogram"
        elif self.stage == "histogram":
            ranked, upto = self._in_value_order()
            buckets = {_bucket_holding(upto, r) for r in self._ranks()}
            self.wanted = {b: (int(upto[b] - ranked[b]), int(ranked[b])) for b in sorted(buckets)}
            self.stage = "buckets"
        elif self.stage == "buckets":
            if not self._median_from(list(self.wanted.values())):
                raise RuntimeError("median: the second pass did not see the values of the first")

    def _interval(self) -> tuple[float, float]:
        """[low, high] holding the middle values unless the sample is far from typical:
        the value range of the buckets around the middle ranks' sample ranks."""
        self._count_samples()
        _, upto = self._in_value_order()  # sampled values up to each bucket
        m, half = self.sampled, self.half_width
        first, last = (r * m / self.n for r in self._ranks())
        low, high = -math.inf, math.inf
        if first - half > 0:
            low = _bucket_edges(_bucket_holding(upto, first - half))[0]
        if last + half < m - 1:
            high = _bucket_edges(_bucket_holding(upto, last + half))[1]
        return low, high

    def _in_value_order(self) -> tuple[np.ndarray, np.ndarray]:
        """The counts per bucket in value order, and their running sums."""
        ranked = self.counts[PATTERN]
        return ranked, np.cumsum(ranked)

    def _ranks(self) -> tuple[int, int]:
        """0-based ranks of the lower and upper middle values (equal for odd counts)."""
        return (self.n - 1) // 2, self.n // 2

    def _median_from(self, blocks: list[tuple[int, int]]) -> bool:
        """Set the median from the values found, whose blocks (values ranked below the
        block, values in it) follow each other in value order; False if the middle ranks
        are not all among them (nothing is set)."""
        values = np.concatenate(self.found) if self.found else np.empty(0)
        if values.size != sum(count for _, count in blocks):
            return False
        middle = []
        for rank in self._ranks():
            offset = 0  # where each block starts among the found values
            for below, count in blocks:
                if below <= rank < below + count:
                    middle.append(offset + rank - below)
                    break
                offset += count
        if len(middle) != 2:
            return False
        lower, upper = np.partition(values, middle)[middle]
        self.median = float((lower + upper) / 2.0)  # NumPy's median: their mean, in float64
        self.found, self.stage = [], "done"
        return True

    def result(self) -> list[float]:
        """[mean, median, variance]; NaN if nothing was added (the median is NaN if any
        value is NaN, as torch.median)."""
        if self.n == 0:
            return [math.nan] * 3
        mean = self.total / self.n
        if self.kept is not None and self.stage != "done" and not self.nan:
            self.found, self.kept = self.kept, []  # every value: one block of ranks 0..n-1
            self._median_from([(0, self.n)])
        if self.stage != "done" and not self.nan:
            raise RuntimeError("median: result() before the passes that needs_pass asks for")
        median = math.nan if self.nan else self.median
        return [mean, median, self.m2 / self.n if math.isfinite(mean) else math.nan]


def _bucket_holding(upto: np.ndarray, rank: float) -> int:
    """The bucket (value order) holding the 0-based rank (its floor), from running sums."""
    return int(np.searchsorted(upto, rank, side="right"))


def _bucket_edges(bucket: int) -> tuple[float, float]:
    """The smallest and largest float32 value of a bucket (value order); +-inf for the
    buckets of the infinities, whose other patterns are NaNs."""
    pattern = int(PATTERN[bucket]) << 16
    ends = np.array([pattern, pattern | 0xFFFF], dtype=np.uint32).view(np.float32)
    ends = np.nan_to_num(ends.astype(np.float64), nan=math.copysign(math.inf, ends[0]))
    return float(ends.min()), float(ends.max())


def _sample_bits(x: np.ndarray) -> np.ndarray:
    """_top_bits of every STRIDE-th value (float64 values rounded only where sampled)."""
    x = x.reshape(-1)
    return _top_bits(x)[::STRIDE] if x.dtype == np.float32 else _top_bits(x[::STRIDE])


def _top_bits(x: np.ndarray) -> np.ndarray:
    """The top 16 bits of each value's float32 pattern (float64 is rounded first), as a
    uint16 view: the histogram bucket, in bit-pattern order (RANK gives value order)."""
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, still in order
        x32 = x.reshape(-1) if x.dtype == np.float32 else x.reshape(-1).astype(np.float32)
    return x32.view(np.uint16)[_TOP::2]
