"""Tuners behind one ask/tell protocol (installed as ``samstar_env.agents``)."""
