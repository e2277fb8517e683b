"""Loss specifications from the command line: ``"ce:1,dice:0.5"`` or ``"focal+dice"``.

A spec is a list of ``name[:weight]`` terms separated by ``,`` or ``+`` (weight 1 when
omitted). It builds ``sum_k w_k * L_k`` as a :class:`segfuse.WeightedSum`, whose
``last_terms`` report each term. Names (multiclass, logits (N, C, H, W), target (N, H, W)):

=========  ==========================================================  ==============
name       loss                                                        class weights
=========  ==========================================================  ==============
ce         CrossEntropyLoss                                            ``weight``
focal      FocalLoss(gamma=2)                                          ``alpha``
dice       DiceLoss                                                    ``class_weights``
jaccard    JaccardLoss                                                 ``class_weights``
tversky    TverskyLoss(alpha=0.3, beta=0.7): FN weigh more than FP     ``class_weights``
gdl        GeneralizedDiceLoss(weight_type="square")                   none (own weights)
lovasz     LovaszLoss(classes="present")                               none
=========  ==========================================================  ==============

``class_weights`` (C,) go to every term of the spec that takes them; a spec whose every
term takes none rejects them (ValueError) rather than dropping them silently.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

from torch import nn

from segfuse import (
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    GeneralizedDiceLoss,
    JaccardLoss,
    LovaszLoss,
    TverskyLoss,
    WeightedSum,
)

Builder = Callable[[Optional[list], Optional[int]], nn.Module]

LOSSES: dict[str, tuple[Builder, bool]] = {
    "ce": (lambda w, ignore: CrossEntropyLoss(weight=w, ignore_index=ignore), True),
    "focal": (lambda w, ignore: FocalLoss(alpha=w, gamma=2.0, ignore_index=ignore), True),
    "dice": (lambda w, ignore: DiceLoss(class_weights=w, ignore_index=ignore), True),
    "jaccard": (lambda w, ignore: JaccardLoss(class_weights=w, ignore_index=ignore), True),
    "tversky": (lambda w, ignore: TverskyLoss(alpha=0.3, beta=0.7, class_weights=w, ignore_index=ignore), True),
    "gdl": (lambda w, ignore: GeneralizedDiceLoss(ignore_index=ignore), False),
    "lovasz": (lambda w, ignore: LovaszLoss(ignore_index=ignore), False),
}

_TERM = re.compile(r"^\s*([a-z_]+)\s*(?::\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*)?$")


def parse_loss_spec(spec: str) -> list[tuple[str, float]]:
    """``"ce:1,dice:0.5"`` -> ``[("ce", 1.0), ("dice", 0.5)]``; ``"ce+dice"`` -> weights 1."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"loss must be a non-empty spec like 'ce:1,dice:0.5', got {spec!r}")
    terms = []
    for part in re.split(r"[,+]", spec.lower()):
        match = _TERM.match(part)
        if match is None:
            raise ValueError(f"loss term must be 'name' or 'name:weight' (e.g. 'dice:0.5'), got {part!r} in {spec!r}")
        name, weight = match.group(1), float(match.group(2) or 1.0)
        if name not in LOSSES:
            raise ValueError(f"loss term must be one of {sorted(LOSSES)}, got {name!r} in {spec!r}")
        if weight <= 0:
            raise ValueError(f"loss weight must be > 0, got {weight} for {name!r} in {spec!r}")
        terms.append((name, weight))
    names = [name for name, _ in terms]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"loss terms must be distinct, got {duplicates} more than once in {spec!r}")
    return terms


def build_loss(
    spec: str, class_weights: Optional[Sequence[float]] = None, ignore_index: Optional[int] = None
) -> WeightedSum:
    """The weighted sum a spec names (see the module docstring for names and weights)."""
    terms = parse_loss_spec(spec)
    weights = None if class_weights is None else [float(w) for w in class_weights]
    if weights is not None and not any(LOSSES[name][1] for name, _ in terms):
        raise ValueError(f"class_weights are not used by any term of loss {spec!r}; "
                         f"terms that take them: {sorted(n for n, (_, takes) in LOSSES.items() if takes)}")
    return WeightedSum([(weight, LOSSES[name][0](weights, ignore_index)) for name, weight in terms])
