"""Seed-batched kernels that round exactly as the per-seed kernels do.

A vectorised group stacks its seeds' parameters along a leading seed dimension S; a
stackable model's ``stacked_forward`` calls the kernels here instead of ``nn.Linear`` etc.
Elementwise ops and reductions along a row give the same bits stacked or not, but a
batched matmul does not always: ``bmm`` takes other BLAS paths than ``mm`` (MKL's batch
gemm, a naive loop below 400 multiply-adds, matrix-vector shapes), and which one depends on
the shapes, the library build and the device. So every kernel here is *checked* on its
first call per signature (shapes, strides, dtype, device): it computes the per-seed
reference (the very ``F.linear`` / ``F.embedding`` call the unstacked model makes, seed by
seed, and autograd's gradients of it) and each batched candidate (plain differentiable
torch ops, so the backward pass needs no Python), and keeps the first candidate whose
output and input gradients are bit-identical for every seed; if none is, that op runs
seed by seed from then on. ``SeedKernels.report()`` says what was chosen.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F

REFERENCE = "per seed"
Form = Callable[..., torch.Tensor]


def signature(*tensors: torch.Tensor | None) -> tuple:
    """What decides which kernel a tensor op takes: shape, strides, dtype, device type."""
    return tuple(
        None if t is None else (tuple(t.shape), t.stride(), t.dtype, t.device.type) for t in tensors
    )


class SeedKernels:
    """The choice of batched form per (op, signature), made once and then reused.

    One instance per vectorised group (no module-level state): a group's shapes repeat
    every step, so the check runs a handful of times per group.
    """

    def __init__(self) -> None:
        self.choices: dict[tuple, str] = {}

    def pick(self, key: tuple, reference: Callable[[], torch.Tensor], candidates):
        """For forward-only values: the chosen candidate's result for ``key``; on the first
        call, the reference's (exact by definition) after choosing.

        candidates: (name, compute) pairs in order of preference.
        """
        name = self.choices.get(key)
        if name is not None:
            return reference() if name == REFERENCE else dict(candidates)[name]()
        expected = reference()
        self.choices[key] = REFERENCE
        for cand_name, compute in candidates:
            if torch.equal(compute(), expected):  # bit-identical (NaNs never are)
                self.choices[key] = cand_name
                break
        return expected

    def report(self) -> dict[str, int]:
        """How many checked op signatures use each form (for the log)."""
        counts: dict[str, int] = {}
        for (op, *_), name in self.choices.items():
            counts[f"{op}: {name}"] = counts.get(f"{op}: {name}", 0) + 1
        return counts

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        """Per seed ``F.linear(x[s], weight[s], bias[s])``, gradients included.

        x: (S, ..., in); weight: (S, out, in); bias: (S, out) or None -> (S, ..., out).
        """
        return self._apply("linear", F.linear, LINEAR_FORMS, x, weight, bias)

    def embedding(self, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Per seed ``F.embedding(tokens[s], table[s])``: tokens (S, ...) -> (S, ..., d)."""
        return self._apply("embedding", F.embedding, EMBEDDING_FORMS, tokens, table)

    def per_seed(self, fn: Callable[..., torch.Tensor], *stacked: torch.Tensor | None):
        """``fn`` applied seed by seed to the slices of ``stacked``, results stacked: for
        ops with no batched form that rounds alike (e.g. layer_norm's fused affine)."""
        n = next(t for t in stacked if t is not None).shape[0]
        return torch.stack([fn(*(None if t is None else t[s] for t in stacked)) for s in range(n)])

    def _apply(self, op: str, one_seed: Form, forms: dict[str, Form], *args):
        grads = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args)
        key = (op, grads, *signature(*args))
        name = self.choices.get(key)
        if name is None:
            name = self.choices[key] = _choose(one_seed, forms, args, grads)
        if name == REFERENCE:
            return self.per_seed(one_seed, *args)
        out = forms[name](*args)
        if out.requires_grad:
            # The check used a contiguous upstream gradient; ops downstream (a vmapped loss)
            # may hand back another layout, which some backward kernels sum in another order.
            out.register_hook(torch.Tensor.contiguous)
        return out


def _grads_of(out: torch.Tensor, inputs: list[torch.Tensor | None], upstream: torch.Tensor):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    return [out, *torch.autograd.grad(out, wanted, upstream)] if wanted else [out]


def random_like(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal values in ``t``'s shape, strides, dtype and device (a kernel's path
    depends on those, not on the values; real values can hide a difference: zero biases
    at init add the same either way)."""
    # One random value per memory location the strides reach (a stride-0 dim, e.g. data
    # shared by every seed, shares its values as the real tensor does).
    span = (
        1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride(), strict=True)) if t.numel() else 0
    )
    values = torch.randn(span, generator=gen, dtype=t.dtype).to(t.device)
    return values.as_strided(t.shape, t.stride())


def _probes(args, gen: torch.Generator) -> list[torch.Tensor | None]:
    """Random stand-ins for the float arguments (integer ones, e.g. tokens, kept)."""
    return [
        None
        if t is None
        else random_like(t, gen).requires_grad_(t.requires_grad)
        if t.is_floating_point()
        else t
        for t in args
    ]


def _leaves(args, s: int | None = None) -> list[torch.Tensor | None]:
    """Detached copies of ``args`` (seed ``s``'s slices) that require grad as they did."""
    return [
        None if t is None else (t if s is None else t[s]).detach().requires_grad_(t.requires_grad)
        for t in args
    ]


def _choose(one_seed: Form, forms: dict[str, Form], args, grads: bool) -> str:
    """The first form whose output (and, when ``grads``, every input gradient for a
    random upstream gradient) equals the per-seed computation bit for bit, on random
    inputs laid out as ``args``."""
    args = _probes(args, torch.Generator().manual_seed(1))
    with torch.enable_grad() if grads else torch.no_grad():
        per_seed, upstream = [], None
        for s in range(args[0].shape[0]):
            leaves = _leaves(args, s)
            out = one_seed(*leaves)
            if upstream is None:
                gen = torch.Generator().manual_seed(0)
                upstream = torch.randn(args[0].shape[0], *out.shape, generator=gen).to(out)
            per_seed.append(_grads_of(out, leaves, upstream[s]) if grads else [out])
        expected = [torch.stack(parts) for parts in zip(*per_seed, strict=True)]
        for name, form in forms.items():
            leaves = _leaves(args)
            out = form(*leaves)
            got = _grads_of(out, leaves, upstream) if grads else [out]
            if all(torch.equal(a, b) for a, b in zip(got, expected, strict=True)):
                return name
    return REFERENCE


def _x_times_wt(x, weight, bias):
    rows = x.reshape(weight.shape[0], -1, x.shape[-1])
    out = (
        torch.bmm(rows, weight.mT)
        if bias is None
        else torch.baddbmm(bias[:, None], rows, weight.mT)
    )
    return out.view(*x.shape[:-1], weight.shape[1])


def _w_times_xt(x, weight, bias):  # the transposed product: mm's matrix-vector shapes
    rows = x.reshape(weight.shape[0], -1, x.shape[-1])
    if rows.requires_grad:
        # Its gradient arrives transposed; the ops upstream (e.g. ReLU's backward) are
        # several times slower on that layout, so hand them a contiguous copy (exact).
        rows.register_hook(torch.Tensor.contiguous)
    out = (
        torch.bmm(weight, rows.mT)
        if bias is None
        else torch.baddbmm(bias[:, :, None], weight, rows.mT)
    )
    # Contiguous, as F.linear's output: the next layer's matmul rounds by its input's layout.
    return out.mT.contiguous().view(*x.shape[:-1], weight.shape[1])


LINEAR_FORMS: dict[str, Form] = {"x @ W^T": _x_times_wt, "(W @ x^T)^T": _w_times_xt}


def _flat_tokens(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """Seed s's tokens shifted to rows s * vocab .. of the seeds' tables laid end to end."""
    s = tokens.shape[0]
    offsets = torch.arange(0, s * vocab, vocab, device=tokens.device)
    return tokens + offsets.view(s, *[1] * (tokens.ndim - 1))


def _embedding_flat(tokens, table):
    flat = table.reshape(-1, table.shape[-1])
    return F.embedding(_flat_tokens(tokens, table.shape[1]), flat)


def _index_select_flat(tokens, table):
    flat = table.reshape(-1, table.shape[-1])
    index = _flat_tokens(tokens, table.shape[1]).reshape(-1)
    return flat.index_select(0, index).view(*tokens.shape, table.shape[-1])


EMBEDDING_FORMS: dict[str, Form] = {
    "flat embedding": _embedding_flat,
    "flat index_select": _index_select_flat,
}


# Stacked parameters: the module's state_dict names -> tensors with a leading seed dim S.
Stacked = dict[str, torch.Tensor]


def weight_and_bias(params: Stacked, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A stacked layer's weight and bias, by the layer's state_dict name."""
    return params[f"{name}.weight"], params[f"{name}.bias"]
