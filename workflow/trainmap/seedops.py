"""Seed-batched kernels that round exactly as the per-seed kernels do.

A vectorised group stacks its seeds' parameters along a leading seed dimension S; a
stackable model's ``stacked_forward`` calls the kernels here instead of ``nn.Linear`` etc.
Elementwise ops and reductions along a row give the same bits stacked or not, but a
batched matmul does not always: ``bmm`` takes other BLAS paths than ``mm`` (MKL's batch
gemm, a naive loop below 400 multiply-adds, matrix-vector shapes), and which one depends on
the shapes, the library build and the device. So every kernel here is *checked* on its
first call per signature (shapes, strides, dtype, device): it computes the per-seed
reference (the very ``F.linear`` / autograd call the unstacked model makes, seed by seed)
and each batched candidate, and keeps the first candidate that is bit-identical for every
seed; if none is, that op runs seed by seed from then on. Backward passes are checked the
same way, one gradient at a time. ``SeedKernels.report()`` says what was chosen.
"""

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Candidate = tuple[str, Callable[[], torch.Tensor]]
REFERENCE = "per seed"


def _signature(*tensors: torch.Tensor | None) -> tuple:
    return tuple(
        None if t is None else (tuple(t.shape), t.stride(), t.dtype, t.device.type) for t in tensors
    )


class SeedKernels:
    """The choice of batched kernel per (op, signature), made once and then reused.

    One instance per vectorised group (no module-level state): a group's shapes repeat
    every step, so the check runs a handful of times per group.
    """

    def __init__(self) -> None:
        self.choices: dict[tuple, str] = {}

    def pick(
        self, key: tuple, reference: Callable[[], torch.Tensor], candidates: Sequence[Candidate]
    ):
        """The result of the chosen kernel for ``key``; on the first call, choose it.

        reference: computes the stacked per-seed result (exact by definition).
        candidates: (name, compute) in order of preference.
        """
        name = self.choices.get(key)
        if name is not None:
            return reference() if name == REFERENCE else dict(candidates)[name]()
        expected = reference()
        self.choices[key] = REFERENCE
        for cand_name, compute in candidates:
            if torch.equal(compute(), expected):  # bit-identical (NaNs never are: keep looping)
                self.choices[key] = cand_name
                break
        return expected

    def report(self) -> dict[str, int]:
        """How many checked op signatures use each kernel (for the log)."""
        counts: dict[str, int] = {}
        for (op, *_), name in self.choices.items():
            counts[f"{op}: {name}"] = counts.get(f"{op}: {name}", 0) + 1
        return counts

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        """Per seed ``F.linear(x[s], weight[s], bias[s])``.

        x: (S, ..., in); weight: (S, out, in); bias: (S, out) or None -> (S, ..., out).
        """
        return _SeedLinear.apply(x, weight, bias, self)

    def embedding(self, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Per seed ``F.embedding(tokens[s], table[s])``: tokens (S, ...) -> (S, ..., d)."""
        return _SeedEmbedding.apply(tokens, table, self)

    def per_seed(self, fn: Callable[..., torch.Tensor], *stacked: torch.Tensor | None):
        """``fn`` applied seed by seed to the slices of ``stacked``, results stacked.

        For ops whose per-seed parameters have no batched form that rounds alike (e.g.
        layer_norm's fused affine); autograd flows through the slices as in the loop.
        """
        n = next(t for t in stacked if t is not None).shape[0]
        return torch.stack([fn(*(None if t is None else t[s] for t in stacked)) for s in range(n)])


def _per_seed_grads(fn, inputs: list[torch.Tensor | None], wanted: list[bool], grad):
    """Stacked per-seed gradients of ``fn(*inputs[s])`` for upstream ``grad[s]``: exactly
    what autograd computes for one seed alone. Returns one tensor (or None) per input."""
    grads: list[list[torch.Tensor]] = [[] for _ in inputs]
    for s in range(grad.shape[0]):
        leaves = [
            None if t is None else t[s].detach().requires_grad_(w)
            for t, w in zip(inputs, wanted, strict=True)
        ]
        with torch.enable_grad():
            out = fn(*leaves)
            targets = [leaf for leaf, w in zip(leaves, wanted, strict=True) if w]
            got = iter(torch.autograd.grad(out, targets, grad[s]))
        for i, w in enumerate(wanted):
            if w:
                grads[i].append(next(got))
    return [torch.stack(g) if g else None for g in grads]


class _SeedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, kernels: SeedKernels):
        ctx.save_for_backward(x, weight, bias)
        ctx.kernels = kernels
        s, n_out = weight.shape[0], weight.shape[1]
        rows = x.reshape(s, -1, x.shape[-1])  # a view for the contiguous inputs models pass
        out_shape = (*x.shape[:-1], n_out)

        def reference():
            return torch.stack(
                [F.linear(x[i], weight[i], None if bias is None else bias[i]) for i in range(s)]
            )

        def x_times_wt():
            if bias is None:
                return torch.bmm(rows, weight.mT).view(out_shape)
            return torch.baddbmm(bias[:, None, :], rows, weight.mT).view(out_shape)

        def w_times_xt():  # the transposed product: matches mm's matrix-vector shapes
            if bias is None:
                return torch.bmm(weight, rows.mT).mT.reshape(out_shape)
            return torch.baddbmm(bias[:, :, None], weight, rows.mT).mT.reshape(out_shape)

        key = ("linear", *_signature(x, weight, bias))
        return kernels.pick(key, reference, [("x @ W^T", x_times_wt), ("(W @ x^T)^T", w_times_xt)])

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        kernels: SeedKernels = ctx.kernels
        wanted = [
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            bias is not None and ctx.needs_input_grad[2],
        ]
        s = weight.shape[0]
        rows = x.reshape(s, -1, x.shape[-1])
        g = grad.reshape(s, -1, weight.shape[1])
        sig = _signature(x, weight, bias, grad)
        cache: dict[str, list] = {}

        def reference(i: int):
            def compute():
                if "ref" not in cache:
                    cache["ref"] = _per_seed_grads(F.linear, [x, weight, bias], wanted, grad)
                return cache["ref"][i]

            return compute

        candidates: list[list[Candidate]] = [
            [
                ("g @ W", lambda: torch.bmm(g, weight).view(x.shape)),
                ("(W^T @ g^T)^T", lambda: torch.bmm(weight.mT, g.mT).mT.reshape(x.shape)),
            ],
            [
                ("g^T @ x", lambda: torch.bmm(g.mT, rows)),
                ("(x^T @ g)^T", lambda: torch.bmm(rows.mT, g).mT.contiguous()),
            ],
            [("sum over rows", lambda: g.sum(1))],
        ]
        names = ("linear grad input", "linear grad weight", "linear grad bias")
        grads: list[Any] = [None, None, None]
        for i in range(3):
            if wanted[i]:
                grads[i] = kernels.pick((names[i], *sig), reference(i), candidates[i])
        return grads[0], grads[1], grads[2], None


class _SeedEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tokens, table, kernels: SeedKernels):
        ctx.save_for_backward(tokens, table)
        ctx.kernels = kernels
        s, vocab = table.shape[0], table.shape[1]
        offsets = torch.arange(s, device=tokens.device).view(s, *[1] * (tokens.ndim - 1))
        ctx.flat_tokens = (tokens + offsets * vocab).reshape(-1)
        # A gather copies: exact for any layout.
        return table.reshape(s * vocab, -1)[ctx.flat_tokens].view(*tokens.shape, table.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        tokens, table = ctx.saved_tensors
        kernels: SeedKernels = ctx.kernels
        flat = grad.reshape(-1, table.shape[-1])

        def reference():
            return _per_seed_grads(
                lambda t, w: F.embedding(t, w), [tokens, table], [False, True], grad
            )[1]

        def index_add():
            out = torch.zeros(
                table.shape[0] * table.shape[1],
                table.shape[2],
                dtype=grad.dtype,
                device=grad.device,
            )
            return out.index_add_(0, ctx.flat_tokens, flat).view(table.shape)

        key = ("embedding grad table", *_signature(tokens, table, grad))
        return None, kernels.pick(key, reference, [("index_add", index_add)]), None
