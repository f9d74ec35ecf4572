"""The one-layer transformer of modular addition (METHOD.md section 7), with its stacked form.

Every model re-initialises its parameters from an explicit ``torch.Generator``
(``reset_parameters``) so a run's seed alone fixes its init, and names the tensors the
weight metrics read (``weight_groups``), following METHOD.md section 2.
"""

import math

import torch
from torch import nn

from trainmap.metrics.weights import WeightGroups
from trainmap.seedops import SeedKernels, Stacked, weight_and_bias


class Attention(nn.Module):
    """Multi-head causal self-attention with separate W_Q, W_K, W_V, W_O and no biases."""

    def __init__(self, d_model: int, n_heads: int, d_head: int):
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.W_Q = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.W_K = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.W_V = nn.Linear(d_model, n_heads * d_head, bias=False)
        self.W_O = nn.Linear(n_heads * d_head, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output at the last position only: x (batch, ctx, d_model) -> (batch, d_model).

        A one-layer model read at the last position needs no other query; causality is
        implicit because the last position may attend to every position. Explicit matmuls
        beat the fused kernels at this tiny context length on the CPU.
        """
        b, t, _ = x.shape
        q = self.W_Q(x[:, -1]).view(b, 1, self.n_heads, self.d_head)
        k = self.W_K(x).view(b, t, self.n_heads, self.d_head)
        v = self.W_V(x).view(b, t, self.n_heads, self.d_head)
        # Broadcast products instead of (batch * heads) tiny matmuls: ctx is 3.
        scores = (q * k).sum(-1, keepdim=True) / math.sqrt(self.d_head)  # (b, t, heads, 1)
        out = (torch.softmax(scores, dim=1) * v).sum(1)  # (b, heads, d_head)
        return self.W_O(out.reshape(b, self.n_heads * self.d_head))

    def stacked_forward(self, params: Stacked, prefix: str, x: torch.Tensor, k: SeedKernels):
        """``forward`` for S seeds at once: x (S, batch, ctx, d_model) -> (S, batch, d_model).

        Mirrors ``forward`` op for op (dims shifted by the seed dim), so each seed rounds as
        it does alone; ``params[prefix + "W_Q.weight"]`` etc. are (S, out, in).
        """
        s, b, t, _ = x.shape
        shape = (s, b, t, self.n_heads, self.d_head)

        def proj(name: str, inputs: torch.Tensor) -> torch.Tensor:
            return k.linear(inputs, params[f"{prefix}{name}.weight"], None)

        q = proj("W_Q", x[:, :, -1]).view(s, b, 1, self.n_heads, self.d_head)
        keys, v = proj("W_K", x).view(shape), proj("W_V", x).view(shape)
        scores = (q * keys).sum(-1, keepdim=True) / math.sqrt(self.d_head)
        out = (torch.softmax(scores, dim=2) * v).sum(2)
        return proj("W_O", out.reshape(s, b, self.n_heads * self.d_head))

    def per_head(self) -> list[torch.Tensor]:
        """W_Q, W_K, W_V split per head: 3 * n_heads matrices of (d_head, d_model)."""
        return [
            head
            for proj in (self.W_Q, self.W_K, self.W_V)
            for head in proj.weight.split(self.d_head, dim=0)
        ]


class OneLayerTransformer(nn.Module):
    """The one-layer transformer of the grokking experiments (METHOD.md section 7).

    Token + learned position embeddings, one attention block and one ReLU MLP block with
    residual connections, optional pre-LayerNorm, and an unembedding read at the last
    position. Only the last position's residual stream is computed: with one layer no
    other position reaches the output. tokens (batch, ctx) -> logits (batch, n_classes).
    """

    # Devices where training seeds stacked beat one after another (config/README.md): on
    # a CPU its matmuls already run at speed seed by seed (0.87-1.01x measured).
    stack_pays_on = ("cuda",)

    def __init__(
        self,
        vocab: int,
        n_classes: int,
        ctx: int,
        d_model: int,
        n_heads: int,
        d_head: int,
        d_mlp: int,
        layer_norm: bool,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos_embed = nn.Parameter(torch.zeros(ctx, d_model))
        self.ln1 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.attn = Attention(d_model, n_heads, d_head)
        self.ln2 = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.W_in = nn.Linear(d_model, d_mlp)
        self.W_out = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, n_classes, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos_embed
        h = x[:, -1] + self.attn(self.ln1(x))
        h = h + self.W_out(torch.relu(self.W_in(self.ln2(h))))
        return self.unembed(h)

    def stacked_forward(self, params: Stacked, tokens: torch.Tensor, k: SeedKernels):
        """``forward`` for S seeds at once: tokens (S, batch, ctx) -> (S, batch, n_classes).

        params: the state_dict names -> (S, ...) tensors. Mirrors ``forward`` op for op.
        """
        x = k.embedding(tokens, params["embed.weight"]) + params["pos_embed"][:, None]
        h = x[:, :, -1] + self.attn.stacked_forward(
            params, "attn.", self._stacked_norm("ln1", params, x, k), k
        )
        inner = k.linear(self._stacked_norm("ln2", params, h, k), *weight_and_bias(params, "W_in"))
        h = h + k.linear(torch.relu(inner), *weight_and_bias(params, "W_out"))
        return k.linear(h, params["unembed.weight"], None)

    def _stacked_norm(self, name: str, params: Stacked, x: torch.Tensor, k: SeedKernels):
        norm = getattr(self, name)
        if isinstance(norm, nn.Identity):
            return x

        def one_seed(xs: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return nn.functional.layer_norm(xs, norm.normalized_shape, w, b, norm.eps)

        # Seed by seed: layer_norm's fused affine has no batched form that rounds alike.
        return k.per_seed(one_seed, x, params[f"{name}.weight"], params[f"{name}.bias"])

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        """N(0, 1/fan_in) weights, zero biases (as the grokking reference code)."""
        for name, p in self.named_parameters():
            if name.startswith(("ln1", "ln2")):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                fan_in = p.shape[-1] if name != "unembed.weight" else p.shape[1]
                p.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)

    def weight_groups(self) -> WeightGroups:
        """15 matrices: 12 per-head Q/K/V, W_O, W_in, W_out; biases: the MLP biases."""
        matrices = [*self.attn.per_head(), self.attn.W_O.weight, self.W_in.weight]
        matrices.append(self.W_out.weight)
        return WeightGroups(
            matrices=matrices,
            weights=matrices,
            biases=[self.W_in.bias, self.W_out.bias],
        )
