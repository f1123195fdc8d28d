"""tf_ode: ANODE / ANODEV2 coupled neural ODEs with exact (DTO) gradients and TFP solvers."""

from tf_ode.integrate import GRADIENTS, METHODS, SolveInfo, odeint

__all__ = ["GRADIENTS", "METHODS", "SolveInfo", "odeint"]
