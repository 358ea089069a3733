"""Fused kernels of the six-muscle arm: one compiled call per task step, forward and backward.

The numpy plant of :mod:`cortexsim.effector` costs about 160 elementwise numpy calls per
integration sub-step (440 with its gradient), each ~0.7 us on a (64, 6) array: ~0.3 s per
training iteration of 176 steps x 5 sub-steps, twice the circuit's own backpropagation.  These
kernels do the same arithmetic per trial in scalar code compiled by numba, one call per task
step (all sub-steps, all trials), and its exact reverse-mode derivative, derived by hand below
(semi-implicit Euler only).  ``tests/test_plant.py`` checks the forward step against
:func:`cortexsim.effector.arm_step` to 1e-12 and the backward step against centred finite
differences.

State layout, per trial, float64: ``s = (q1, q2, dq1, dq2, a_1 .. a_6)`` (rad, rad/s, activation).
Constants are packed by :func:`cortexsim.effector.plant_constants`: ``scal`` (see ``_S_*``) and
``mus`` (rows ``_M_*``, one column per muscle).

Derivatives of the non-smooth pieces (clips, ``max``, branch switches) are those of the branch in
force at the point (a subgradient at the kink itself); the state never sits on a kink except the
activation at its floor, where the derivative of the clip is taken as 1.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

N_STATE = 10
N_SENSE = 14  # fibre length / l_opt (6), fibre velocity / vmax (6), hand x, y (m)

# scal indices
_S_L1, _S_L2, _S_I11, _S_I12, _S_I22, _S_K = 0, 1, 2, 3, 4, 5
_S_KPE, _S_SLACK, _S_FLW, _S_FLMIN = 6, 7, 8, 9
_S_AREL, _S_BREL, _S_QCRIT, _S_QFLOOR, _S_DROP = 10, 11, 12, 13, 14
_S_EASYM, _S_ERATIO, _S_EFAR = 15, 16, 17
_S_TAUA, _S_TAUD, _S_C0, _S_C1, _S_AMIN = 18, 19, 20, 21, 22
_S_LIMK, _S_LIMB, _S_LIMW, _S_DAMP = 23, 24, 25, 26
_S_QMIN0, _S_QMIN1, _S_QMAX0, _S_QMAX1, _S_OFF0, _S_OFF1 = 27, 28, 29, 30, 31, 32
_S_INV_FLW, _S_INV_QSPAN, _S_INV_TAUA, _S_INV_TAUD, _S_INV_LIMW = 33, 34, 35, 36, 37
N_SCAL = 38
SCALARS = (
    "l1", "l2", "i11", "i12", "i22", "k",
    "k_pe", "passive_slack_length", "fl_width", "fl_min",
    "fv_a_rel", "fv_b_rel", "fv_q_crit", "fv_b_rel_floor_activation", "fv_b_rel_drop",
    "fv_eccentric_asymptote", "fv_eccentric_slope_ratio", "fv_eccentric_far_slope",
    "tau_activation", "tau_deactivation", "thelen_c0", "thelen_c1", "min_activation",
    "limit_stiffness", "limit_damping", "limit_width", "joint_damping",
    "q_min_shoulder", "q_min_elbow", "q_max_shoulder", "q_max_elbow", "offset_shoulder", "offset_elbow",
    "inv_fl_width", "inv_fv_q_span", "inv_tau_activation", "inv_tau_deactivation", "inv_limit_width",
)  # fmt: skip
"""Names of the entries of the packed scalar constants, in order (the ``_S_*`` indices)."""
# mus rows
_M_A0, _M_A1S, _M_A1E, _M_A2S, _M_A2E, _M_FMAX, _M_LOPT, _M_LT, _M_VMAX = 0, 1, 2, 3, 4, 5, 6, 7, 8
_M_INV_LOPT, _M_INV_VMAX = 9, 10
N_MUS_ROWS = 11
MUSCLE_ROWS = (
    "a0", "a1_shoulder", "a1_elbow", "a2_shoulder", "a2_elbow", "f_max", "l_opt", "l_tendon", "v_max",
    "inv_l_opt", "inv_v_max",
)  # fmt: skip
"""Names of the rows of the packed per-muscle constants, in order (the ``_M_*`` indices)."""

_CACHE = True


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _clip_activation(a, amin):
    """Activation clipped to [amin, 1] and the clip's derivative (1 inside, 0 where it clips)."""
    if a < amin:
        return amin, 0.0
    if a > 1.0:
        return 1.0, 0.0
    return a, 1.0


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _muscle(a, length, velocity, m, scal, mus):
    """Force of muscle ``m`` (N) and its partials: (F, dF/da, dF/dL, dF/dV).

    Written with as few divisions as the relation allows (reciprocals are packed constants): a
    division costs ~10 multiplications, and the muscles are most of the plant's arithmetic.
    """
    ac, dac = _clip_activation(a, scal[_S_AMIN])
    inv_lo = mus[_M_INV_LOPT, m]
    fibre = length - mus[_M_LT, m]
    dln_dl = inv_lo
    if fibre < 0.0:
        fibre, dln_dl = 0.0, 0.0
    ln = fibre * inv_lo
    inv_vmax = mus[_M_INV_VMAX, m]
    vn = velocity * inv_vmax
    slack = scal[_S_SLACK]
    passive, dpass = 0.0, 0.0
    if ln > slack:
        passive = scal[_S_KPE] * (ln - slack) ** 2
        dpass = 2.0 * scal[_S_KPE] * (ln - slack)
    inv_w = scal[_S_INV_FLW]
    z = (ln - 1.0) * inv_w
    fl, dfl = 1.0 - z * z, -2.0 * z * inv_w
    if fl <= scal[_S_FLMIN]:
        fl, dfl = scal[_S_FLMIN], 0.0
    arel, darel = scal[_S_AREL], 0.0
    if ln > 1.0:
        arel, darel = scal[_S_AREL] * fl, scal[_S_AREL] * dfl
    brel, dbrel = scal[_S_BREL], 0.0
    qc = scal[_S_QCRIT]
    if ac < qc:
        c = scal[_S_DROP] * scal[_S_INV_QSPAN]
        t = 1.0 - c * (ac - qc)
        brel = scal[_S_BREL] * t * t
        dbrel = -2.0 * scal[_S_BREL] * t * c
    fa = fl * ac
    dfa_da, dfa_dln = fl, dfl * ac
    if vn < 0.0:
        num = vn * ac * arel + fa * brel
        inv = 1.0 / (brel - vn)
        act = num * inv
        dn_da = vn * arel + dfa_da * brel + fa * dbrel
        dact_da = (dn_da - act * dbrel) * inv
        dact_dln = (vn * ac * darel + dfa_dln * brel) * inv
        dact_dvn = (ac * arel + act) * inv
    else:
        easym, s = scal[_S_EASYM], scal[_S_EFAR]
        inv_b = 1.0 / brel
        slope0 = ac * (fl + arel) * inv_b
        ds_da = (fl + arel) * inv_b - slope0 * dbrel * inv_b
        ds_dln = ac * (dfl + darel) * inv_b
        e1 = (easym - 1.0) * fa
        de1_da, de1_dln = (easym - 1.0) * dfa_da, (easym - 1.0) * dfa_dln
        gain = scal[_S_ERATIO] * slope0 - s
        dg_da, dg_dln = scal[_S_ERATIO] * ds_da, scal[_S_ERATIO] * ds_dln
        if gain < 0.0:
            gain, dg_da, dg_dln = 0.0, 0.0, 0.0
        inv_d = 1.0 / (e1 + gain * vn)
        r = e1 * inv_d  # e1^2 / d = e1 r
        act = easym * fa + s * vn - e1 * r
        dact_da = easym * dfa_da - 2.0 * r * de1_da + r * r * (de1_da + dg_da * vn)
        dact_dln = easym * dfa_dln - 2.0 * r * de1_dln + r * r * (de1_dln + dg_dln * vn)
        dact_dvn = s + r * r * gain
    if act < 0.0:
        act, dact_da, dact_dln, dact_dvn = 0.0, 0.0, 0.0, 0.0
    fmax = mus[_M_FMAX, m]
    return (act + passive) * fmax, fmax * dact_da * dac, fmax * (dact_dln + dpass) * dln_dl, fmax * dact_dvn * inv_vmax


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _geometry(q1, q2, scal, mus, dl, length):
    """Moment-arm derivatives dL/dq (2, 6) and musculotendon lengths (6,) at (q1, q2)."""
    x1 = q1 - scal[_S_OFF0]
    x2 = q2 - scal[_S_OFF1]
    for m in range(6):
        dl[0, m] = mus[_M_A1S, m] + 2.0 * mus[_M_A2S, m] * x1
        dl[1, m] = mus[_M_A1E, m] + 2.0 * mus[_M_A2E, m] * x2
        length[m] = mus[_M_A0, m] + (mus[_M_A1S, m] + mus[_M_A2S, m] * x1) * x1
        length[m] += (mus[_M_A1E, m] + mus[_M_A2E, m] * x2) * x2


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _barrier(x):
    """softplus(x) and sigmoid(x), sharing one exponential; (0, 0) below x = -40 (both < 5e-18)."""
    if x < -40.0:
        return 0.0, 0.0
    e = math.exp(-abs(x))
    sp = max(x, 0.0) + math.log1p(e)
    sg = 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)
    return sp, sg


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _limit(q, dq, j, scal):
    """Joint-limit torque of joint ``j`` and its partials: (tau, dtau/dq, dtau/ddq)."""
    k, bd, w, inv_w = scal[_S_LIMK], scal[_S_LIMB], scal[_S_LIMW], scal[_S_INV_LIMW]
    lo, hi = scal[_S_QMIN0 + j], scal[_S_QMAX0 + j]
    spb, sb = _barrier((lo - q) * inv_w)
    spc, sc = _barrier((q - hi) * inv_w)
    tau = k * w * (spb - spc) - bd * dq * (sb + sc)
    return tau, -k * (sb + sc) - bd * dq * (sc * (1.0 - sc) - sb * (1.0 - sb)) * inv_w, -bd * (sb + sc)


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _act_rate(u, a, scal):
    """Thelen activation rate and its partials: (da/dt, d/du, d/da)."""
    ac, dac = _clip_activation(a, scal[_S_AMIN])
    c1 = scal[_S_C1]
    g = scal[_S_C0] + c1 * ac
    if u > ac:
        inv = scal[_S_INV_TAUA] / g  # 1 / (tau_act g)
        rate = (u - ac) * inv
        return rate, inv, (-inv - rate * c1 / g) * dac
    inv_td = scal[_S_INV_TAUD]
    return (u - ac) * g * inv_td, g * inv_td, (-g + (u - ac) * c1) * inv_td * dac


# Tape layout per trial and sub-step: what the backward step needs of the forward one.
_T_STATE = 0  # the sub-step's starting state (10)
_T_FORCE = 10  # muscle forces (6)
_T_DFDA, _T_DFDL, _T_DFDV = 16, 22, 28  # their partials (6 each)
_T_LIMQ, _T_LIMDQ = 34, 36  # joint-limit torque partials (2 each)
_T_ACC = 38  # joint accelerations (2)
_T_ARDU, _T_ARDA = 40, 46  # activation-rate partials (6 each)
_T_ACLIP = 52  # 1 where the activation update stayed inside [min_activation, 1], else 0 (6)
TAPE_WIDTH = 58
"""Numbers kept per trial and sub-step by :func:`step_forward` for :func:`step_backward`."""


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _substep(s, u, lx, ly, curl, scal, mus, h, dl, length, rec):
    """One semi-implicit Euler sub-step of the state ``s`` (10,), in place; ``rec`` (58,) records it.

    The force on the hand is the load ``(lx, ly)`` plus the velocity-dependent field ``curl @ v``
    (``curl`` (2, 2), N s/m; ``v`` the hand velocity at the sub-step's start).
    """
    q1, q2, dq1, dq2 = s[0], s[1], s[2], s[3]
    for j in range(N_STATE):
        rec[_T_STATE + j] = s[j]
    _geometry(q1, q2, scal, mus, dl, length)
    t1, t2 = 0.0, 0.0
    for m in range(6):
        vel = dl[0, m] * dq1 + dl[1, m] * dq2
        f, dfa, dfl, dfv = _muscle(s[4 + m], length[m], vel, m, scal, mus)
        rec[_T_FORCE + m], rec[_T_DFDA + m], rec[_T_DFDL + m], rec[_T_DFDV + m] = f, dfa, dfl, dfv
        t1 -= f * dl[0, m]
        t2 -= f * dl[1, m]
    lim1, rec[_T_LIMQ], rec[_T_LIMDQ] = _limit(q1, dq1, 0, scal)
    lim2, rec[_T_LIMQ + 1], rec[_T_LIMDQ + 1] = _limit(q2, dq2, 1, scal)
    damp = scal[_S_DAMP]
    t1 += lim1 - damp * dq1
    t2 += lim2 - damp * dq2
    curled = curl[0, 0] != 0.0 or curl[0, 1] != 0.0 or curl[1, 0] != 0.0 or curl[1, 1] != 0.0
    if lx != 0.0 or ly != 0.0 or curled:  # the endpoint force's joint torque J(q)^T f
        l1, l2 = scal[_S_L1], scal[_S_L2]
        s12 = q1 + q2
        x1, y1 = l1 * math.cos(q1), l1 * math.sin(q1)
        x2, y2 = l2 * math.cos(s12), l2 * math.sin(s12)
        fx, fy = lx, ly
        if curled:  # f += B v, v = J(q) dq
            vx = -(y1 + y2) * dq1 - y2 * dq2
            vy = (x1 + x2) * dq1 + x2 * dq2
            fx += curl[0, 0] * vx + curl[0, 1] * vy
            fy += curl[1, 0] * vx + curl[1, 1] * vy
        t1 += -(y1 + y2) * fx + (x1 + x2) * fy
        t2 += -y2 * fx + x2 * fy
    # forward dynamics M^-1 (tau - C dq)
    k = scal[_S_K]
    cos2 = math.cos(q2)
    m11 = scal[_S_I11] + 2.0 * k * cos2
    m12 = scal[_S_I12] + k * cos2
    m22 = scal[_S_I22]
    hh = k * math.sin(q2)
    r1 = t1 + hh * (2.0 * dq1 + dq2) * dq2
    r2 = t2 - hh * dq1 * dq1
    inv_det = 1.0 / (m11 * m22 - m12 * m12)
    acc1 = (m22 * r1 - m12 * r2) * inv_det
    acc2 = (m11 * r2 - m12 * r1) * inv_det
    rec[_T_ACC], rec[_T_ACC + 1] = acc1, acc2
    amin = scal[_S_AMIN]
    for m in range(6):
        um = min(max(u[m], amin), 1.0)  # the excitation is clipped to [min_activation, 1] ...
        rate, du, rec[_T_ARDA + m] = _act_rate(um, s[4 + m], scal)
        rec[_T_ARDU + m] = du if u[m] >= amin and u[m] <= 1.0 else 0.0  # ... so its derivative is 0 outside
        a = s[4 + m] + h * rate
        inside = a >= amin and a <= 1.0
        rec[_T_ACLIP + m] = 1.0 if inside else 0.0
        s[4 + m] = min(max(a, amin), 1.0)
    s[2] = dq1 + h * acc1
    s[3] = dq2 + h * acc2
    s[0] = q1 + h * s[2]
    s[1] = q2 + h * s[3]


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def step_forward(state, u, load, curl, scal, mus, h, n_sub, out, tape):
    """One task step of ``n_sub`` semi-implicit Euler sub-steps of ``h`` s for every trial.

    Parameters
    ----------
    state : (trials, 10) float64, the state at the start of the step.
    u : (trials, 6) float64, excitation (clipped here to [min_activation, 1]).
    load : (trials, 2) float64, endpoint force (N).
    curl : (2, 2) float64, a velocity-dependent force field on the hand, f = curl @ v (N s/m).
    out : (trials, 10), the state after the step.
    tape : (trials, n_sub, TAPE_WIDTH), filled with what the backward step needs.
    """
    dl = np.empty((2, 6))
    length = np.empty(6)
    s = np.empty(N_STATE)
    for i in range(state.shape[0]):
        for j in range(N_STATE):
            s[j] = state[i, j]
        for k in range(n_sub):
            _substep(s, u[i], load[i, 0], load[i, 1], curl, scal, mus, h, dl, length, tape[i, k])
        for j in range(N_STATE):
            out[i, j] = s[j]


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def step_backward(tape, load, curl, scal, mus, h, n_sub, g_out, g_state, g_u, g_load, want_load):
    """Reverse-mode derivative of :func:`step_forward`.

    Given ``g_out`` = dL/d(state after the step), (trials, 10), *sets* ``g_state`` = dL/d(state
    before the step) and ``g_u`` = dL/du (trials, 6; 0 where the excitation was clipped), and, when
    ``want_load``, *adds* dL/d(load) to ``g_load`` (trials, 2).  ``tape`` is the one :func:`step_forward` filled.
    """
    dl = np.empty((2, 6))
    length = np.empty(6)
    g = np.empty(N_STATE)
    ga = np.empty(6)
    l1, l2, k_, damp = scal[_S_L1], scal[_S_L2], scal[_S_K], scal[_S_DAMP]
    curled = curl[0, 0] != 0.0 or curl[0, 1] != 0.0 or curl[1, 0] != 0.0 or curl[1, 1] != 0.0
    for i in range(tape.shape[0]):
        for j in range(N_STATE):
            g[j] = g_out[i, j]
        for m in range(6):
            g_u[i, m] = 0.0
        lx, ly = load[i, 0], load[i, 1]
        loaded = lx != 0.0 or ly != 0.0 or curled
        for k in range(n_sub - 1, -1, -1):
            rec = tape[i, k]
            q1, q2, dq1, dq2 = rec[0], rec[1], rec[2], rec[3]
            _geometry(q1, q2, scal, mus, dl, length)
            acc1, acc2 = rec[_T_ACC], rec[_T_ACC + 1]
            # q' = q + h dq',  dq' = dq + h acc,  a' = clip(a + h rate)
            gdq1 = g[2] + h * g[0]
            gdq2 = g[3] + h * g[1]
            gq1, gq2 = g[0], g[1]
            gacc1, gacc2 = h * gdq1, h * gdq2
            for m in range(6):
                gpre = g[4 + m] * rec[_T_ACLIP + m]
                ga[m] = gpre + h * gpre * rec[_T_ARDA + m]
                g_u[i, m] += h * gpre * rec[_T_ARDU + m]
            # acc = M^-1 r, r = tau - C dq: dL/dr = M^-1 dL/dacc, dL/dM = -dL/dr acc^T
            cos2, sin2 = math.cos(q2), math.sin(q2)
            m11 = scal[_S_I11] + 2.0 * k_ * cos2
            m12 = scal[_S_I12] + k_ * cos2
            m22 = scal[_S_I22]
            inv_det = 1.0 / (m11 * m22 - m12 * m12)
            gr1 = (m22 * gacc1 - m12 * gacc2) * inv_det
            gr2 = (m11 * gacc2 - m12 * gacc1) * inv_det
            gm11 = -gr1 * acc1
            gm12 = -(gr1 * acc2 + gr2 * acc1)
            gq2 += -sin2 * (2.0 * k_ * gm11 + k_ * gm12)
            hh = k_ * sin2
            # r1 = t1 + hh (2 dq1 + dq2) dq2,  r2 = t2 - hh dq1^2
            ghh = gr1 * (2.0 * dq1 + dq2) * dq2 - gr2 * dq1 * dq1
            gq2 += k_ * cos2 * ghh
            gdq1 += gr1 * 2.0 * hh * dq2 - gr2 * 2.0 * hh * dq1
            gdq2 += gr1 * hh * (2.0 * dq1 + 2.0 * dq2)
            gt1, gt2 = gr1, gr2
            # tau_j = -sum_m F_m dL_m/dq_j + limit_j - damping dq_j + (J^T f)_j
            gx1, gx2 = 0.0, 0.0
            for m in range(6):
                f = rec[_T_FORCE + m]
                gf = -(gt1 * dl[0, m] + gt2 * dl[1, m])
                gl = gf * rec[_T_DFDL + m]
                gv = gf * rec[_T_DFDV + m]
                ga[m] += gf * rec[_T_DFDA + m]
                gdl1 = -gt1 * f + gv * dq1
                gdl2 = -gt2 * f + gv * dq2
                gx1 += gl * dl[0, m] + gdl1 * 2.0 * mus[_M_A2S, m]
                gx2 += gl * dl[1, m] + gdl2 * 2.0 * mus[_M_A2E, m]
                gdq1 += gv * dl[0, m]
                gdq2 += gv * dl[1, m]
            gq1 += gx1 + gt1 * rec[_T_LIMQ]
            gq2 += gx2 + gt2 * rec[_T_LIMQ + 1]
            gdq1 += gt1 * (rec[_T_LIMDQ] - damp)
            gdq2 += gt2 * (rec[_T_LIMDQ + 1] - damp)
            if loaded or want_load:
                s12 = q1 + q2
                x1, y1 = l1 * math.cos(q1), l1 * math.sin(q1)
                x2, y2 = l2 * math.cos(s12), l2 * math.sin(s12)
                gfx = -(y1 + y2) * gt1 - y2 * gt2  # dL/df = J(q) dL/dtau
                gfy = (x1 + x2) * gt1 + x2 * gt2
                if want_load:
                    g_load[i, 0] += gfx
                    g_load[i, 1] += gfy
                fx, fy = lx, ly
                if curled:  # f = load + B v, v = J(q) dq: dL/dv = B^T dL/df
                    vx = -(y1 + y2) * dq1 - y2 * dq2
                    vy = (x1 + x2) * dq1 + x2 * dq2
                    fx += curl[0, 0] * vx + curl[0, 1] * vy
                    fy += curl[1, 0] * vx + curl[1, 1] * vy
                    gvx = curl[0, 0] * gfx + curl[1, 0] * gfy
                    gvy = curl[0, 1] * gfx + curl[1, 1] * gfy
                    gdq1 += -(y1 + y2) * gvx + (x1 + x2) * gvy
                    gdq2 += -y2 * gvx + x2 * gvy
                    w = dq1 + dq2
                    gq1 += gvx * (-(x1 + x2) * dq1 - x2 * dq2) + gvy * (-(y1 + y2) * dq1 - y2 * dq2)
                    gq2 += -(gvx * x2 + gvy * y2) * w
                d2 = -x2 * fx - y2 * fy
                gq1 += gt1 * (-(x1 + x2) * fx - (y1 + y2) * fy) + gt2 * d2
                gq2 += (gt1 + gt2) * d2
            g[0], g[1], g[2], g[3] = gq1, gq2, gdq1, gdq2
            for m in range(6):
                g[4 + m] = ga[m]
        for j in range(N_STATE):
            g_state[i, j] = g[j]


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def sense(state, scal, mus, out):
    """What the arm's sensors see in each trial, (trials, 14).

    Columns: fibre length / l_opt (6), fibre lengthening velocity / vmax (6) and the hand
    position (m, shoulder frame; 2).
    """
    dl = np.empty((2, 6))
    length = np.empty(6)
    l1, l2 = scal[_S_L1], scal[_S_L2]
    for i in range(state.shape[0]):
        q1, q2, dq1, dq2 = state[i, 0], state[i, 1], state[i, 2], state[i, 3]
        _geometry(q1, q2, scal, mus, dl, length)
        for m in range(6):
            out[i, m] = max(length[m] - mus[_M_LT, m], 0.0) * mus[_M_INV_LOPT, m]
            out[i, 6 + m] = (dl[0, m] * dq1 + dl[1, m] * dq2) * mus[_M_INV_VMAX, m]
        out[i, 12] = l1 * math.cos(q1) + l2 * math.cos(q1 + q2)
        out[i, 13] = l1 * math.sin(q1) + l2 * math.sin(q1 + q2)


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def sense_backward(state, scal, mus, g_sense, g_state):
    """Reverse-mode derivative of :func:`sense`: *adds* dL/d(state) to ``g_state`` (trials, 10)."""
    dl = np.empty((2, 6))
    length = np.empty(6)
    l1, l2 = scal[_S_L1], scal[_S_L2]
    for i in range(state.shape[0]):
        q1, q2, dq1, dq2 = state[i, 0], state[i, 1], state[i, 2], state[i, 3]
        _geometry(q1, q2, scal, mus, dl, length)
        gx1, gx2, gdq1, gdq2 = 0.0, 0.0, 0.0, 0.0
        for m in range(6):
            gl = g_sense[i, m] * mus[_M_INV_LOPT, m] if length[m] > mus[_M_LT, m] else 0.0
            gv = g_sense[i, 6 + m] * mus[_M_INV_VMAX, m]
            gx1 += gl * dl[0, m] + gv * dq1 * 2.0 * mus[_M_A2S, m]
            gx2 += gl * dl[1, m] + gv * dq2 * 2.0 * mus[_M_A2E, m]
            gdq1 += gv * dl[0, m]
            gdq2 += gv * dl[1, m]
        s12 = q1 + q2
        x2, y2 = l2 * math.cos(s12), l2 * math.sin(s12)
        x, y = l1 * math.cos(q1) + x2, l1 * math.sin(q1) + y2
        gx, gy = g_sense[i, 12], g_sense[i, 13]
        g_state[i, 0] += gx1 - gx * y + gy * x
        g_state[i, 1] += gx2 - gx * y2 + gy * x2
        g_state[i, 2] += gdq1
        g_state[i, 3] += gdq2


# -- one task step of the closed loop, body side (cortexsim.closed_loop.ArmLoop) -----------------------


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def _sigmoid(y):
    return 1.0 / (1.0 + math.exp(-y)) if y >= 0.0 else math.exp(y) / (1.0 + math.exp(y))


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def loop_send(y, floor, motor_noise, motor, state, load, curl, scal, mus, h, n_sub, advance, e, out, tape, z_next):
    """Send a readout: excitation, then (``advance``) the arm's step and what its sensors see after it.

    ``e = floor + (1 - floor) sigmoid(y)``, times ``1 + motor_noise motor`` and clipped to [0, 1]
    when ``motor`` has rows (trials, 6); else ``motor`` is (0, 6).  Then, if ``advance``,
    :func:`step_forward` from ``state`` into ``out`` (filling ``tape``) and :func:`sense` of
    ``out`` into ``z_next`` (trials, 14).
    """
    noisy = motor.shape[0] > 0
    for i in range(y.shape[0]):
        for m in range(6):
            v = floor + (1.0 - floor) * _sigmoid(y[i, m])
            if noisy:
                v = min(max(v * (1.0 + motor_noise * motor[i, m]), 0.0), 1.0)
            e[i, m] = v
    if advance:
        step_forward(state, e, load, curl, scal, mus, h, n_sub, out, tape)
        sense(out, scal, mus, z_next)


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def loop_feedback(z, t, dp, dv, gains, length0, hand0, goals, sensory, out):
    """The delayed feedback of step ``t`` into ``out`` (trials, 14).

    ``z`` (time, trials, 14) are the sensor readings; proprioception reads ``z[max(t - dp, 0)]``,
    vision ``z[max(t - dv, 0)]``.  ``gains`` = (length gain, velocity gain, 1 / vision scale);
    ``goals`` (time, trials, 2) the target (m, relative to the start); ``sensory`` (trials, 14)
    the noise to add, or (0, 14).
    """
    tp, tv = max(t - dp, 0), max(t - dv, 0)
    noisy = sensory.shape[0] > 0
    for i in range(out.shape[0]):
        for m in range(6):
            out[i, m] = gains[0] * (z[tp, i, m] - length0[m])
            out[i, 6 + m] = gains[1] * z[tp, i, 6 + m]
        for c in range(2):
            out[i, 12 + c] = (z[tv, i, 12 + c] - hand0[c] - goals[tv, i, c]) * gains[2]
        if noisy:
            for c in range(14):
                out[i, c] += sensory[i, c]


@njit(cache=_CACHE, error_model="numpy", nogil=True)
def loop_backward(
    t, g_f, dp, dv, gains, g_z, tape, load, curl, scal, mus, h, n_sub, advance, state, g_act, lam, g_s, g_e,
    y, floor, motor_noise, motor, g_y,
):  # fmt: skip
    """The adjoint of one closed-loop step (:func:`loop_send` and :func:`loop_feedback` of step ``t``).

    ``g_f`` (trials, 14): dL/df[t] (times nothing yet), or (0, 14) when f[t] reached nothing; it
    is scaled by the feedback gains and added to ``g_z`` (time, trials, 14) at the delayed steps
    (``t - d >= 1``: ``z[0]`` is fixed).  ``lam`` = dL/ds[t + 1]; if ``advance`` the plant's
    reverse step sets ``g_s`` = dL/ds[t] and ``g_e`` = dL/de[t] (else both zero); for ``t >= 1``
    the sensors' and the effort's shares at ``s[t]`` (``g_act`` (trials, 6)) are added.  Sets
    ``g_y`` = dL/dy[t] through the excitation map (and the motor noise's clip).
    """
    n = g_s.shape[0]
    if g_f.shape[0] > 0:
        if t - dp >= 1:
            for i in range(n):
                for m in range(6):
                    g_z[t - dp, i, m] += g_f[i, m] * gains[0]
                    g_z[t - dp, i, 6 + m] += g_f[i, 6 + m] * gains[1]
        if t - dv >= 1:
            for i in range(n):
                for c in range(12, 14):
                    g_z[t - dv, i, c] += g_f[i, c] * gains[2]
    if advance:
        dummy = np.empty((1, 2))
        step_backward(tape, load, curl, scal, mus, h, n_sub, lam, g_s, g_e, dummy, False)
    else:
        g_s[...] = 0.0
        g_e[...] = 0.0
    if t >= 1:
        sense_backward(state, scal, mus, g_z[t], g_s)
        for i in range(n):
            for m in range(6):
                g_s[i, 4 + m] += g_act[i, m]
    noisy = motor.shape[0] > 0
    for i in range(n):
        for m in range(6):
            sig = _sigmoid(y[i, m])
            ge = g_e[i, m]
            if noisy:
                factor = 1.0 + motor_noise * motor[i, m]
                v = (floor + (1.0 - floor) * sig) * factor
                ge = ge * factor if (v >= 0.0 and v <= 1.0) else 0.0
            g_y[i, m] = ge * (1.0 - floor) * sig * (1.0 - sig)
