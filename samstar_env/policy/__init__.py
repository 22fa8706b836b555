"""Amortized tuning: a policy that maps a micrograph to AMG parameters in one forward pass.

* :mod:`~samstar_env.policy.pool` (layer 3): the frozen image pools a policy trains and is judged on.
* :mod:`~samstar_env.policy.policy_file` (layer 4): the saved policy (``policy.zip`` + ``policy.json``),
  loaded with :func:`~samstar_env.policy.policy_file.load_policy`, which proposes parameters per image.
* :mod:`~samstar_env.policy.train` and :mod:`~samstar_env.policy.cli` (layer 5): ``samstar train-policy``.

This package's ``__init__`` imports nothing, so each module keeps its own layer.
"""
