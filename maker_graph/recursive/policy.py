"""`RecursionPolicy`: how far and how wide a decomposition tree may grow, and its budgets."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["RecursionPolicy"]


@dataclass(frozen=True, kw_only=True)
class RecursionPolicy:
    """Limits and budgets of a recursive decomposition.

    Example:
        >>> RecursionPolicy(max_depth=3, candidates=3, max_samples_per_node=60).max_depth
        3
    """

    max_depth: int = 4
    """Depth at which a node is solved directly, without asking a decomposer (root: 0)."""
    candidates: int = 3
    """Valid decomposer proposals collected per node before the discriminator chooses."""
    max_fanout: int = 4
    """Most subproblems one split may have; a proposal with more is red-flagged."""
    max_nodes: int = 512
    """Most nodes the tree may have; a split that would exceed it fails the run."""
    max_samples_per_node: int | None = None
    """Samples one node may draw over all its roles (decomposer, discriminator, solver or
    composer); None: only each role's own per-vote budget applies."""
    always_discriminate: bool = False
    """Vote even when every proposal was equivalent (off: one distinct candidate is chosen
    without a vote, since there is nothing to choose between)."""

    def __post_init__(self) -> None:
        problems = []
        if self.max_depth < 0:
            problems.append(f"max_depth must be >= 0, got {self.max_depth}")
        if self.candidates < 1:
            problems.append(f"candidates must be >= 1, got {self.candidates}")
        if self.max_fanout < 2:
            problems.append(f"max_fanout must be >= 2, got {self.max_fanout}")
        if self.max_nodes < 1:
            problems.append(f"max_nodes must be >= 1, got {self.max_nodes}")
        if self.max_samples_per_node is not None and self.max_samples_per_node < 1:
            problems.append(
                f"max_samples_per_node must be >= 1 or None, got {self.max_samples_per_node}"
            )
        if problems:
            raise ConfigurationError("; ".join(problems))
