"""Physics-guided, label-free rewards (installed as ``samstar_env.rewards``)."""
