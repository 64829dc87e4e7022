"""`promote` section: the gate a new model passes to replace the champion that `vaeops serve` reads."""

from __future__ import annotations

from dataclasses import dataclass

from vaeops.core.errors import ParamsError


@dataclass(frozen=True)
class PromoteParams:
    """`promote` section: where the champion lives, where the decision goes, and the NLL margin."""

    champion_dir: str = "champion"
    decision: str = "reports/promotion.json"
    nll_margin: float = 0.05
    history_dir: str = "champion-history"
    keep_champions: int = 5
    git_commit: bool = False
    nll_k: int = 100
    accept_contract_change: bool = False

    def check(self) -> None:
        if not self.champion_dir.strip() or not self.decision.strip():
            raise ParamsError("promote.champion_dir and promote.decision must be non-empty paths")
        if self.nll_k < 1:
            raise ParamsError(f"promote.nll_k must be >= 1, got {self.nll_k}")
        if self.keep_champions < 1:
            raise ParamsError(f"promote.keep_champions must be >= 1, got {self.keep_champions}")
        if not self.history_dir.strip():
            raise ParamsError("promote.history_dir must be a non-empty path")
        if self.nll_margin < 0:
            raise ParamsError(f"promote.nll_margin must be >= 0 nats, got {self.nll_margin}")
