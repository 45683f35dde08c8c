"""The four agent roles of long multiplication: what each is told, and its checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ConfigurationError
from ...recursive.roles import Role, Roles
from ...vote import VotePolicy
from .notation import ROLES, canonical_split, check_product, check_split, product_key


def guidance(leaf_digits: int = 3) -> dict[str, str]:
    """The task know-how added to each role's default prompt.

    Example:
        >>> "10^m" in guidance()["decomposer"]
        True
    """
    return {
        "decomposer": (
            "Problems are products 'A × B' of non-negative integers. Solve directly when "
            f"both factors have at most {leaf_digits} digits. Otherwise take the longer "
            "factor X (the first if they are equally long), let L be its last m = "
            "len(X) // 2 digits and H the digits before them, so X = H * 10^m + L. The "
            "subproblems are 'H × Y' and 'L × Y' (Y the other factor) and the composition "
            "is '#1 * 10^m + #2' with m written as a number. Write subproblems as "
            "'digits × digits' and compositions as a sum of '#i' or '#i * 10^e' terms."
        ),
        "discriminator": (
            "A candidate is right when, with every subproblem answered exactly, its "
            "composition equals the product asked for: check the digits of each part "
            "and each power of ten. Solving directly is right only for factors of at most "
            f"{leaf_digits} digits."
        ),
        "solver": "Give the exact product as digits only, without separators.",
        "composer": (
            "Compute the composition exactly: '#i * 10^e' appends e zeros to answer #i; "
            "then add the terms. Give digits only, without separators."
        ),
    }


def multiplication_roles(
    models: Any | Mapping[str, Any],
    *,
    k: int = 3,
    max_samples: int | None = None,
    on_no_consensus: str = "raise",
    leaf_digits: int = 3,
) -> Roles:
    """The four roles for multiplication: models plus this task's checks, keys and prompts.

    Args:
        models: one model for every role, or a mapping role name -> model (chat
            models, samplers or functions; see `Role.model`).
        k: the margin of every vote.
        max_samples: the per-vote sample budget (None: `VotePolicy`'s default).
        on_no_consensus: `"raise"` or `"plurality"`.
        leaf_digits: factors this short are solved directly (mentioned in prompts).

    Example:
        >>> from maker_graph.tasks.multiplication import RoleErrors, simulated_models
        >>> roles = multiplication_roles(simulated_models(RoleErrors.uniform(0.05)), k=2)
        >>> roles.solver.policy.k
        2
    """
    if isinstance(models, Mapping):
        missing = [r for r in ROLES if r not in models]
        if missing:
            raise ConfigurationError(f"no model for role(s) {missing}; give all of {ROLES}")
        per_role = dict(models)
    else:
        per_role = dict.fromkeys(ROLES, models)
    policy = VotePolicy(k=k, max_samples=max_samples, on_no_consensus=on_no_consensus)  # type: ignore[arg-type]
    return Roles(
        decomposer=Role(model=per_role["decomposer"], check=check_split, policy=policy),
        discriminator=Role(model=per_role["discriminator"], policy=policy),
        solver=Role(model=per_role["solver"], check=check_product, key=product_key, policy=policy),
        composer=Role(
            model=per_role["composer"], check=check_product, key=product_key, policy=policy
        ),
        canonical=canonical_split,
        guidance=guidance(leaf_digits),
    )
