"""What real models return, and which of it is the scores.

Models return a tensor, a tuple or list, a dict, a Hugging Face ``ModelOutput`` (a dict
with attributes: ``out.logits``), a namedtuple or a dataclass. `pick_scores` finds the
tensor of class scores in any of these, or says what it found and how to choose with
``output=`` (a key or attribute name, an index, or a callable). `call_model` runs a
model on positional or keyword inputs (``input_ids=..., attention_mask=...``).

>>> import torch
>>> pick_scores({"logits": torch.zeros(2, 3), "hidden": torch.zeros(2, 5, 8)}).shape
torch.Size([2, 3])
>>> pick_scores((torch.zeros(2, 3), torch.zeros(2, 3)), output=1).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

SCORE_KEYS = ("logits", "scores", "prediction_logits")  # taken without asking, in this order
Output = str | int | Callable[[Any], Any] | None
HOW = (
    "pass output= to choose: a key or attribute name (output='logits'), an index "
    "(output=0) or a callable (output=lambda out: out.logits[:, 0])"
)


def fields(out: Any) -> list[tuple[str | int, Any]]:
    """The named (or numbered) parts of a structured output, in order; [] for a tensor or
    anything without parts."""
    if isinstance(out, Mapping):  # dict, OrderedDict, Hugging Face ModelOutput
        return [(k, v) for k, v in out.items() if v is not None]
    if isinstance(out, tuple) and hasattr(out, "_fields"):  # namedtuple
        return [(k, getattr(out, k)) for k in out._fields]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    if isinstance(out, (tuple, list)):
        return list(enumerate(out))
    return []


def describe(out: Any) -> str:
    """``out`` in a few words: its type and its parts' shapes, as an error message says
    what a model returned."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    parts = fields(out)
    if not parts:
        return f"a {type(out).__name__}"

    def part(v: Any) -> str:
        if isinstance(v, torch.Tensor):
            return str(tuple(v.shape))
        if isinstance(v, (tuple, list)):
            return f"{type(v).__name__} of {len(v)}"
        return type(v).__name__

    inner = ", ".join(f"{k}: {part(v)}" for k, v in parts[:8])
    more = f", ... ({len(parts)} in all)" if len(parts) > 8 else ""
    return f"{type(out).__name__}({inner}{more})"


def check_output(output: Any) -> Output:
    """``output`` if it can choose a part of an output (None, a key or attribute name, an
    index, a callable); a TypeError otherwise."""
    if output is None or callable(output) or isinstance(output, str):
        return output
    if isinstance(output, int) and not isinstance(output, bool):
        return output
    raise TypeError(
        f"output must be a key or attribute name, an index or a callable, got {output!r}"
    )


def pick(out: Any, output: Output) -> Any:
    """The part of ``out`` that ``output`` names (a key or attribute, an index, a
    callable); raises ValueError naming what there is when it names nothing."""
    if callable(check_output(output)):
        return output(out)
    if isinstance(output, str):
        if isinstance(out, Mapping) and output in out:
            return out[output]
        if not isinstance(out, Mapping) and hasattr(out, output):
            return getattr(out, output)
    elif isinstance(output, int) and not isinstance(output, bool):
        if (
            isinstance(out, Sequence)
            and not isinstance(out, str)
            and -len(out) <= output < len(out)
        ):
            return out[output]
        if isinstance(out, Mapping) and 0 <= output < len(out):  # ModelOutput: by position
            return list(out.values())[output]
    raise ValueError(f"output={output!r} names no part of what the model returned: {describe(out)}")


def pick_scores(out: Any, output: Output = None, *, what: str = "class scores") -> torch.Tensor:
    """The tensor of ``what`` in a model's output: ``output``'s choice if given, else the
    output itself (a tensor), its ``logits`` (or another of `SCORE_KEYS`), or its only
    tensor. Anything else is ambiguous: a ValueError says what was found and how to
    choose."""
    if output is not None:
        chosen = pick(out, output)
        if not isinstance(chosen, torch.Tensor):
            raise ValueError(f"output={output!r} picked {describe(chosen)}, not a tensor of {what}")
        return chosen
    if isinstance(out, torch.Tensor):
        return out
    parts = fields(out)
    named = dict(parts)
    for key in SCORE_KEYS:
        if isinstance(named.get(key), torch.Tensor):
            return named[key]
    tensors = [v for _, v in parts if isinstance(v, torch.Tensor)]
    if len(tensors) == 1 and not isinstance(out, (tuple, list)) or len(parts) == 1 and tensors:
        return tensors[0]
    found = describe(out)
    if not tensors:
        raise ValueError(f"the model returned {found}: no tensor of {what} in it; {HOW}")
    raise ValueError(f"the model returned {found}: which part holds the {what}? {HOW}")


def structured(out: Any) -> bool:
    """Whether ``out`` is a model's structured output (a dict, a ModelOutput, a dataclass,
    or a tuple or list holding a tensor), not an array-like of numbers or labels."""
    if isinstance(out, Mapping) or (dataclasses.is_dataclass(out) and not isinstance(out, type)):
        return True
    return isinstance(out, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in out)


def call_model(model: Callable[..., Any], inputs: Any, **kwargs: Any) -> Any:
    """``model(inputs, **kwargs)``; a dict of keyword inputs (``input_ids``,
    ``attention_mask``, ``pixel_values``) is passed as keywords: ``model(**inputs,
    **kwargs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs, **kwargs)
    return model(inputs, **kwargs)
