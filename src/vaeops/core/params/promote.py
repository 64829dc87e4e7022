"""`promote` section: the gate a new model passes to replace the champion that `vaeops serve` reads."""

from __future__ import annotations

from pydantic import Field

from vaeops.core.params.base import Number, Section


class PromoteParams(Section):
    """`promote` section: where the champion lives, where the decision goes, and the NLL margin."""

    champion_dir: str = Field("champion", min_length=1)
    decision: str = Field("reports/promotion.json", min_length=1)
    nll_margin: Number = Field(0.05, ge=0)  # nats
    history_dir: str = Field("champion-history", min_length=1)
    keep_champions: int = Field(5, ge=1)
    git_commit: bool = False
    nll_k: int = Field(100, ge=1)
    accept_contract_change: bool = False
