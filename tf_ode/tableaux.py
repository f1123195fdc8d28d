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
    simplifying assumption", Table 1 (FSAL, 7 stages / 6); b is the FSAL row a[6] and the
    error row is bhat - b (its sign does not matter to the error norm; diffrax
    `diffrax/_solver/tsit5.py` holds the same rows with the opposite sign). The
    `torchdiffeq/_impl/tsit5.py` on torchdiffeq's master branch (not part of release 0.2.5, which
    has no tsit5) propagates the embedded 4th-order row: its `c_sol` equals bhat, not b.

Dense output (continuous extensions, `ButcherTableau.dense`): y(t + theta dt) =
y + dt * sum_j b_j(theta) k_j with b_j a polynomial in theta and b_j(1) = b_j, so an output time
inside a step costs no evaluation of f.
  dopri5: Hairer's 4th-order continuous extension (Hairer, Norsett & Wanner I, II.6, the CONTD5
    coefficients of DOPRI5), written per stage as in scipy `scipy/integrate/_ivp/rk.py`
    (`RK45.P`).
  tsit5: Tsitouras (2011)'s 4th-order interpolant polynomials (as diffrax
    `diffrax/_solver/tsit5.py` `_Tsit5Interpolation`), expanded into powers of theta.
  bosh3: the cubic Hermite interpolant through (y, f) at both ends of the step (Shampine,
    "Interpolation for Runge-Kutta methods", SIAM J. Numer. Anal. 22, 1985); the end slope is the
    FSAL stage, so it is free too. 3rd order, C1 across steps.
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
      dense: continuous extension, one row per stage: dense[j][p] is the coefficient of
        theta^(p + 1) in b_j(theta), where y(t + theta dt) = y + dt sum_j b_j(theta) k_j.
    """

    name: str
    order: int
    c: tuple
    a: tuple
    b: tuple
    b_error: tuple
    fsal: bool
    dense: tuple = ()

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


def _tableau(name, order, c, a, b, b_hat=None, b_error=None, fsal=True, dense=None):
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
        dense=tuple(_floats(row) for row in (dense if dense is not None else _hermite(b))),
    )


def _hermite(b):
    """Cubic Hermite through (y0, f0) and (y1, f1 = last FSAL stage), per stage (Shampine 1985).

    y(theta) = y0 + dt [(3 theta^2 - 2 theta^3) sum_j b_j k_j + (theta - 2 theta^2 + theta^3) k_0
    + (theta^3 - theta^2) k_last].
    """
    rows = [[0, 3 * F(bj), -2 * F(bj)] for bj in b]
    rows[0] = [r + h for r, h in zip(rows[0], [1, -2, 1])]
    rows[-1] = [r + h for r, h in zip(rows[-1], [0, -1, 1])]
    return rows


def _poly(*factors):
    """Expands a product of polynomials (coefficient lists, lowest power first) exactly."""
    out = [F(1)]
    for factor in factors:
        factor = [F(str(v)) if isinstance(v, (float, str)) else F(v) for v in factor]
        prod = [F(0)] * (len(out) + len(factor) - 1)
        for i, x in enumerate(out):
            for j, y in enumerate(factor):
                prod[i + j] += x * y
        out = prod
    return out


def _theta_powers(coefficients):
    """Drops the constant term of a polynomial in theta (b_j(0) = 0) and pads to degree 4."""
    if coefficients[0] != 0:
        raise ValueError(f"b_j(0) must be 0. Received: {coefficients[0]}")
    return (list(coefficients[1:]) + [F(0)] * 4)[:4]


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
    # Hairer's CONTD5 continuous extension as per-stage polynomials (scipy RK45.P): theta^1..^4.
    dense=[
        [1, F(-8048581381, 2820520608), F(8663915743, 2820520608), F(-12715105075, 11282082432)],
        [0, 0, 0, 0],
        [
            0,
            F(131558114200, 32700410799),
            F(-68118460800, 10900136933),
            F(87487479700, 32700410799),
        ],
        [
            0,
            F(-1754552775, 470086768),
            F(14199869525, 1410260304),
            F(-10690763975, 1880347072),
        ],
        [
            0,
            F(127303824393, 49829197408),
            F(-318862633887, 49829197408),
            F(701980252875, 199316789632),
        ],
        [0, F(-282668133, 205662961), F(2019193451, 616988883), F(-1453857185, 822651844)],
        [0, F(40617522, 29380423), F(-110615467, 29380423), F(69997945, 29380423)],
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
    # Tsitouras (2011) interpolant b_j(theta), factored as in diffrax's _Tsit5Interpolation.
    dense=[
        _theta_powers(
            _poly(
                [0, "-1.0530884977290216"],
                ["-1.3299890189751412", 1],
                ["0.7139816917074209", "-1.4364028541716351", 1],
            )
        ),
        _theta_powers(_poly([0, 0, "0.1017"], ["1.2949852507374631", "-2.1966568338249754", 1])),
        _theta_powers(
            _poly(
                [0, 0, "2.490627285651252793"], ["1.57803468208092486", "-2.38535645472061657", 1]
            )
        ),
        _theta_powers(
            _poly(
                [0, 0, "-16.54810288924490272"],
                ["-1.21712927295533244", 1],
                ["-0.61620406037800089", 1],
            )
        ),
        _theta_powers(
            _poly(
                [0, 0, "47.37952196281928122"],
                ["-1.203071208372362603", 1],
                ["-0.658047292653547382", 1],
            )
        ),
        _theta_powers(_poly([0, 0, "-34.87065786149660974"], [F(-6, 5), 1], [F(-2, 3), 1])),
        _theta_powers(_poly([0, 0, F(5, 2)], [-1, 1], [F(-3, 5), 1])),
    ],
)

# One name -> one tableau (as torchdiffeq's SOLVERS); `odeint(method=name)` looks names up here.
SOLVERS = {tableau.name: tableau for tableau in (DOPRI5, BOSH3, TSIT5)}
