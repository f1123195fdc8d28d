"""tf_ode: ANODE / ANODEV2 coupled neural ODEs with exact (DTO) gradients and TFP solvers.

`odeint` (and `odeint_event`, up to a terminal event) solves over nested states with fixed-step
(euler, rk2, rk4), our adaptive embedded Runge-Kutta with dense output (dopri5, bosh3, tsit5;
`SOLVERS`) or TFP (DormandPrince "tfp_dopri5", BDF "bdf") solvers and three gradient modes
("dto", "checkpoint", "adjoint"); the Keras layers build ANODE (`ODEBlock`) and ANODEV2
(`CoupledODEBlock` with weight dynamics q) networks.
See docs/tf_ode.md.
"""

# tf_runtime first: it silences TensorFlow's start-up lines before TensorFlow is imported.
import tf_runtime  # noqa: F401  # isort: skip
from tf_ode.blocks import CoupledODEBlock, ODEBlock, ResidualBlock
from tf_ode.dynamics import (
    LinearDynamics,
    ReactionDiffusionAdvection,
    WeightDynamics,
    ZeroDynamics,
    build_weight_dynamics,
    register_weight_dynamics,
)
from tf_ode.events import odeint_event
from tf_ode.functions import ConvODEFunc, DenseODEFunc
from tf_ode.integrate import GRADIENTS, METHODS, SolveInfo, odeint
from tf_ode.models import ODEClassifier, build_model
from tf_ode.tableaux import SOLVERS, ButcherTableau

__all__ = [
    "GRADIENTS",
    "SOLVERS",
    "ButcherTableau",
    "METHODS",
    "ConvODEFunc",
    "CoupledODEBlock",
    "DenseODEFunc",
    "LinearDynamics",
    "ODEBlock",
    "ODEClassifier",
    "ReactionDiffusionAdvection",
    "ResidualBlock",
    "SolveInfo",
    "WeightDynamics",
    "ZeroDynamics",
    "build_model",
    "build_weight_dynamics",
    "odeint",
    "odeint_event",
    "register_weight_dynamics",
]
