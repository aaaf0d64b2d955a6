"""Attention rollout (Abnar & Zuidema, 2020) for vision transformers.

The attention weights of every layer, averaged over heads, plus the identity (the
residual connection), rows normalised: ``A_l = norm(mean_heads(W_l) + I)``. The rollout
through layer ``l`` is ``A_l @ ... @ A_1``; its class-token row over the patch tokens,
on the patch grid, is the map (a model without a class token: the mean of all rows).

The weights are read as the model computes them, whatever the implementation:
``softmax`` outputs of shape ``(N, heads, T, T)`` (or ``(N * heads, T, T)``), the
weights of ``F.scaled_dot_product_attention``, worked out again from its queries, keys,
mask and scale (the fused kernel never forms them), and those of
``nn.MultiheadAttention`` (asked for per head, then given to the caller as it asked).

>>> w = torch.full((1, 1, 3, 3), 1 / 3)  # uniform attention over a class token and 2 patches
>>> step(torch.eye(3).expand(1, 3, 3), w)[0, 0]
tensor([0.6667, 0.1667, 0.1667])
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

SOFTMAX = {torch.softmax, F.softmax, torch.Tensor.softmax, torch.special.softmax}
_MHA = inspect.signature(F.multi_head_attention_forward)


class AttentionRecorder(TorchFunctionMode):
    """Within the block, records the attention weights ``(N, heads, T, T)`` (float32,
    detached) that a forward over ``n`` samples computes, in order."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.weights: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.weights)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.multi_head_attention_forward:
            return self._mha(args, kwargs)
        out = func(*args, **kwargs)
        if func in SOFTMAX:
            self._softmax(out, args, kwargs)
        elif func is F.scaled_dot_product_attention:
            self._sdpa(*args, **kwargs)
        return out

    def _keep(self, w: Any) -> None:
        if not isinstance(w, torch.Tensor) or w.ndim not in (3, 4) or w.shape[-1] != w.shape[-2]:
            return
        if w.shape[0] % self.n or (w.ndim == 4 and w.shape[0] != self.n):
            return
        self.weights.append(w.detach().float().reshape(self.n, -1, w.shape[-1], w.shape[-1]))

    def _softmax(self, out: Any, args: tuple, kwargs: dict) -> None:
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if isinstance(out, torch.Tensor) and dim in (-1, out.ndim - 1):
            self._keep(out)

    def _mha(self, args: tuple, kwargs: dict) -> Any:
        """``nn.MultiheadAttention``'s function, asked for its weights per head; the
        caller gets the weights it asked for (averaged over heads, or none)."""
        call = _MHA.bind(*args, **kwargs)
        call.apply_defaults()
        want, average = call.arguments["need_weights"], call.arguments["average_attn_weights"]
        call.arguments.update(need_weights=True, average_attn_weights=False)
        out, weights = F.multi_head_attention_forward(*call.args, **call.kwargs)
        self._keep(weights)
        if not want:
            return out, None
        return out, weights.mean(dim=-3) if average else weights

    def _sdpa(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> None:
        if query.ndim != 4 or query.shape[-2] != key.shape[-2]:
            return  # not self-attention over one set of tokens
        q, k = query.detach().float(), key.detach().float()
        if k.shape[1] != q.shape[1]:  # grouped-query attention: keys shared by heads
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        logits = (
            q @ k.transpose(-2, -1) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
        )
        t = logits.shape[-1]
        if is_causal:
            keep = torch.ones(t, t, dtype=torch.bool, device=logits.device).tril()
            logits = logits.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                logits = logits.masked_fill(~attn_mask, float("-inf"))
            else:
                logits = logits + attn_mask.float()
        self._keep(logits.softmax(dim=-1))


def step(rollout: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One layer of rollout: ``norm(mean_heads(weights) + I) @ rollout``."""
    a = weights.mean(dim=1)
    a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return (a / a.sum(dim=-1, keepdim=True)) @ rollout


def read(rollout: torch.Tensor, extras: int, size: tuple[int, ...]) -> torch.Tensor:
    """The map ``(N, *size)``: the class token's row (the mean row without extra tokens)
    over the patch tokens."""
    row = rollout[:, 0] if extras else rollout.mean(dim=1)
    return row[:, extras:].reshape(rollout.shape[0], *size)
