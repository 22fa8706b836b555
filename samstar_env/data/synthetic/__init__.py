"""Physics-based synthetic micrographs with exact ground truth: ``perovskite``, ``ito``, ``auco``.

``generate(task, seed, size, **knobs)`` renders one :class:`~samstar_env.data.Micrograph`;
``prior(task)`` gives the task's :class:`~samstar_env.data.PhysicsPrior`; ``split_seeds(task, split)``
the frozen ``tune``/``test``/``train`` seeds. Modules: ``common`` (sprites and ground truth), ``shapes``
(outlines), ``placement`` (self-assembly, deposition), ``imaging`` (support, blur, noise), one module
per task, and ``tasks`` (the registry).
"""

from samstar_env.data.synthetic.auco import AuCoKnobs
from samstar_env.data.synthetic.ito import ItoKnobs
from samstar_env.data.synthetic.perovskite import PerovskiteKnobs
from samstar_env.data.synthetic.tasks import (
    GENERATOR_VERSION,
    SPLITS,
    TASKS,
    generate,
    knob_defaults,
    prior,
    split_seeds,
)

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "TASKS",
    "AuCoKnobs",
    "ItoKnobs",
    "PerovskiteKnobs",
    "generate",
    "knob_defaults",
    "prior",
    "split_seeds",
]
