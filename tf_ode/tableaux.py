"""Butcher tableaux of the embedded (adaptive) Runge-Kutta solvers, one registry entry each.

Every coefficient is held as a Python float (an IEEE float64) computed from an exact
`fractions.Fraction` (Dormand-Prince, Bogacki-Shampine) or parsed from a long decimal literal
(Tsitouras, whose coefficients are irrational), so a float64 solve uses the correctly rounded
float64 coefficient; a float32 solve rounds that float64 once. Nothing goes through float32
(TFP's DormandPrince casts its tableau through float32: `tf.cast(0.1, tf.float64)` is
0.10000000149, which limits float64 solves to ~1e-8 accuracy).

References:
  dopri5: Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae"; Hairer, Norsett &
    Wanner, Solving ODEs I, Table II.5.2 (order 5, embedded 4, FSAL, 7 stages / 6 evaluations).
  bosh3: Bogacki & Shampine (1989), "A 3(2) pair of Runge-Kutta formulas" (FSAL, 4 stages / 3).
  tsit5: Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column
    simplifying assumption", Table 1 (FSAL, 7 stages / 6). torchdiffeq 0.2.5's tsit5 pairs the
    right error weights with the wrong solution weights (its `c_sol` is b + btilde; its tests
    exclude tsit5); here b is the FSAL row a[6] and btilde = b - bhat as published.
"""

import dataclasses
from fractions import Fraction as F  # noqa: N817 - tableau rows stay readable


@dataclasses.dataclass(frozen=True)
class ButcherTableau:
    """An explicit embedded RK pair.

    Attributes:
      name: registry name.
      order: order of the propagated solution (controls the step-size exponent 1/order).
      c: nodes, length s.
      a: lower-triangular rows, a[i] has length i (a[0] = ()).
      b: weights of the propagated solution, length s.
      b_error: b - b_hat (weights of the local error estimate), length s.
      fsal: the last stage is f(t + dt, y_new) (c[-1] = 1 and a[-1] = b[:-1], b[-1] = 0), so it
        is the next step's first stage: s - 1 evaluations per step.
    """

    name: str
    order: int
    c: tuple
    a: tuple
    b: tuple
    b_error: tuple
    fsal: bool

    @property
    def num_stages(self) -> int:
        return len(self.c)

    @property
    def evaluations_per_step(self) -> int:
        """Function evaluations per attempted step (the first stage comes from the previous step)."""
        return self.num_stages - 1 if self.fsal else self.num_stages

    @property
    def solution_stages(self) -> int:
        """Stages whose evaluation y_new depends on (the trailing FSAL stage is not one)."""
        last = max(i for i, w in enumerate(self.b) if w != 0.0)
        return last + 1


def _floats(values):
    return tuple(float(v) for v in values)


def _tableau(name, order, c, a, b, b_hat=None, b_error=None, fsal=True):
    if b_error is None:
        b_error = [bi - bh for bi, bh in zip(b, b_hat)]
    return ButcherTableau(
        name=name,
        order=order,
        c=_floats(c),
        a=tuple(_floats(row) for row in a),
        b=_floats(b),
        b_error=_floats(b_error),
        fsal=fsal,
    )


_DOPRI5_B = [F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0]
DOPRI5 = _tableau(
    "dopri5",
    5,
    c=[0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1],
    a=[
        [],
        [F(1, 5)],
        [F(3, 40), F(9, 40)],
        [F(44, 45), F(-56, 15), F(32, 9)],
        [F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)],
        [F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)],
        _DOPRI5_B[:6],
    ],
    b=_DOPRI5_B,
    b_hat=[
        F(5179, 57600),
        0,
        F(7571, 16695),
        F(393, 640),
        F(-92097, 339200),
        F(187, 2100),
        F(1, 40),
    ],
)

_BOSH3_B = [F(2, 9), F(1, 3), F(4, 9), 0]
BOSH3 = _tableau(
    "bosh3",
    3,
    c=[0, F(1, 2), F(3, 4), 1],
    a=[[], [F(1, 2)], [0, F(3, 4)], _BOSH3_B[:3]],
    b=_BOSH3_B,
    b_hat=[F(7, 24), F(1, 4), F(1, 3), F(1, 8)],
)

# Tsitouras (2011), Table 1: decimal literals (irrational coefficients), parsed to float64.
_TSIT5_B = [
    0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396,
    0.01,
    0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
    1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
    -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
    2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841,
    0.0,
]
TSIT5 = _tableau(
    "tsit5",
    5,
    c=[
        0.0,
        0.161,
        0.327,
        0.9,
        0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604,
        1.0,
        1.0,
    ],
    a=[
        [],
        [0.161],
        [
            -0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943,
            0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569,
        ],
        [
            2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
            -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
            4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077,
        ],
        [
            5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
            -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
            7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
            -0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635,
        ],
        [
            5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
            -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
            8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
            -0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835,
            -0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206,
        ],
        _TSIT5_B[:6],
    ],
    b=_TSIT5_B,
    b_error=[
        -1.780011052225771443378550607539534775944678804333659557637450799792588061629796e-03,
        -8.164344596567469032236360633546862401862537590159047610940604670770447527463931e-04,
        7.880878010261996010314727672526304238628733777103128603258129604952959142646516e-03,
        -1.44711007173262907537165147972635116720922712343167677619514233896760819649515e-01,
        5.823571654525552250199376106520421794260781239567387797673045438803694038950012e-01,
        -4.580821059291869466616365188325542974428047279788398179474684434732070620889539e-01,
        1.0 / 66.0,
    ],
)

# One name -> one tableau (as torchdiffeq's SOLVERS); `odeint(method=name)` looks names up here.
SOLVERS = {tableau.name: tableau for tableau in (DOPRI5, BOSH3, TSIT5)}
