"""Known-answer validation: a scaled Potjans & Diesmann (2014) microcircuit.

Builds the PD14 cortical microcircuit (Cerebral Cortex 24:785-806) with the
cortexsim spec machinery (``CircuitSpec`` / ``PopulationSpec`` /
``ProjectionSpec`` and ``cortexsim.circuit.population_sizes``), simulates it
with Brian2 ``cpp_standalone`` (one thread) and compares the mean rate of each
of the 8 populations with the published full-scale rates (target: within
+/-20 %).

Scaling (documented; see validation/README.md):

* neurons x ``--scale`` (default 0.2), split by ``population_sizes``;
* in-degrees x ``--k-scale`` (default 1.0 = full PD14 in-degree).  For
  ``k < 1`` the van Albada, Helias & Diesmann (2015, PLoS Comput Biol
  11:e1004490) correction is applied: recurrent weights x 1/sqrt(k) and a DC
  current per population restoring the lost mean input,
  ``I_DC = (1 - sqrt(k)) * tau_syn * sum_pre K_full * J * nu_published``;
* external drive: every neuron gets the full K_ext x 8 Hz as independent
  Poisson input (Brian2 ``PoissonInput``), which is exact at any scale.

Connectivity: PD14 draws a fixed *total* number of synapses per projection,
``N_syn = ln(1-p) / ln(1 - 1/(N_pre N_post))`` (full-scale sizes), with
multapses and autapses, i.e. the mean in-degree is ``N_syn / N_post``.  This
script draws ``round(k * N_syn / N_post_full * N_post)`` (pre, post) pairs
uniformly at random in the scaled network, like NEST's
``fixed_total_number``.  ``cortexsim.circuit.build_connectome`` is NOT used for
the synapses: it samples Bernoulli(p) pairs without multapses (which lowers
the in-degree of the dense projections, e.g. L5i->L5e p = 0.37 gives
p*N_pre instead of -ln(1-p)*N_pre, 20 % fewer) and rescales the weights by
its spectral-radius gain rule, whereas PD14 needs its published weights.

Run:  .venv/bin/python validation/potjans_diesmann.py --scale 0.2 --duration 1.0
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time

import numpy as np

from cortexsim.anatomy import CircuitSpec, PopulationSpec, ProjectionSpec
from cortexsim.circuit import population_sizes

# --------------------------------------------------------------------------
# Published PD14 parameters (ANATOMY.md, "Generic baseline: Potjans & Diesmann 2014")
NAMES = ("L2/3e", "L2/3i", "L4e", "L4i", "L5e", "L5i", "L6e", "L6i")
# L5 is mapped onto cortexsim layer "L5B": PD14's L5 is dominated by thick-tufted
# L5B pyramids and cortexsim has no undivided "L5" layer.
LAYER = {"L2/3": "L2/3", "L4": "L4", "L5": "L5B", "L6": "L6"}
FULL_SIZES = (20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948)
# connection probabilities, rows = target, columns = source (order NAMES)
CONN = np.array(
    [
        [0.1009, 0.1689, 0.0437, 0.0818, 0.0323, 0.0, 0.0076, 0.0],
        [0.1346, 0.1371, 0.0316, 0.0515, 0.0755, 0.0, 0.0042, 0.0],
        [0.0077, 0.0059, 0.0497, 0.1350, 0.0067, 0.0003, 0.0453, 0.0],
        [0.0691, 0.0029, 0.0794, 0.1597, 0.0033, 0.0, 0.1057, 0.0],
        [0.1004, 0.0622, 0.0505, 0.0057, 0.0831, 0.3726, 0.0204, 0.0],
        [0.0548, 0.0269, 0.0257, 0.0022, 0.0600, 0.3158, 0.0086, 0.0],
        [0.0156, 0.0066, 0.0211, 0.0166, 0.0572, 0.0197, 0.0396, 0.2252],
        [0.0364, 0.0010, 0.0034, 0.0005, 0.0277, 0.0080, 0.0658, 0.1443],
    ]
)
K_EXT = (1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100)
NU_EXT = 8.0  # Hz, background rate per external synapse
J_PA = 87.8  # pA, PSC amplitude giving a ~0.15 mV PSP
G = 4.0  # |inhibitory / excitatory| weight ratio
PUBLISHED = (0.97, 2.87, 4.75, 5.40, 8.14, 9.08, 0.99, 7.52)  # Hz, full scale
# neuron (PD14): LIF, exponential current synapses
TAU_M, TAU_SYN, T_REF = 10.0, 0.5, 2.0  # ms
C_M = 250.0  # pF
E_L, V_TH, V_RESET = -65.0, -50.0, -65.0  # mV
# delays (PD14): E 1.5 +/- 0.75 ms, I 0.75 +/- 0.375 ms; weights: 10 % relative sd
D_E, D_I, D_REL_SD, W_REL_SD = 1.5, 0.75, 0.5, 0.1
DT = 0.1  # ms


def pd14_spec() -> CircuitSpec:
    """The PD14 microcircuit as a cortexsim CircuitSpec.

    ``size`` is the full-scale neuron count; ``tau`` the membrane time constant
    (s); projection ``weight`` is the unitary strength in units of J
    (1, 2 for L4e->L2/3e, g = 4 for inhibitory sources; sign from the class).
    """
    pops = []
    for name, n in zip(NAMES, FULL_SIZES):
        layer, cls = name[:-1], name[-1]
        pops.append(
            PopulationSpec(
                name=name,
                layer=LAYER[layer],
                cell_class="E" if cls == "e" else "I",
                subtype="IT" if cls == "e" else "PV",
                size=float(n),
                tau=TAU_M / 1000.0,
            )
        )
    projs = []
    for a, post in enumerate(NAMES):
        for b, pre in enumerate(NAMES):
            p = float(CONN[a, b])
            if p <= 0:
                continue
            w = G if pre.endswith("i") else (2.0 if (pre, post) == ("L4e", "L2/3e") else 1.0)
            projs.append(ProjectionSpec(pre=pre, post=post, probability=p, weight=w))
    return CircuitSpec(populations=tuple(pops), projections=tuple(projs), outputs=("L5e",), weight_cv=W_REL_SD)


def full_indegree(spec: CircuitSpec) -> np.ndarray:
    """PD14 mean in-degree K[post, pre] at full scale (fixed total number, multapses)."""
    full = {p.name: p.size for p in spec.populations}
    idx = {n: i for i, n in enumerate(spec.names)}
    K = np.zeros((len(idx), len(idx)))
    for proj in spec.projections:
        npre, npost = full[proj.pre], full[proj.post]
        nsyn = math.log(1.0 - proj.probability) / math.log(1.0 - 1.0 / (npre * npost))
        K[idx[proj.post], idx[proj.pre]] = round(nsyn) / npost
    return K


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.2, help="neuron-number scale (default 0.2, the validated setting)")
    ap.add_argument(
        "--k-scale",
        type=float,
        default=1.0,
        help="in-degree scale k; k<1 uses the van Albada 2015 correction (default 1 = full)",
    )
    ap.add_argument("--duration", type=float, default=1.0, help="measured time, s (default 1.0)")
    ap.add_argument("--transient", type=float, default=0.2, help="discarded initial time, s (default 0.2)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--tolerance", type=float, default=0.2, help="relative tolerance (default 0.2)")
    args = ap.parse_args(argv)
    if not (0 < args.scale <= 1 and 0 < args.k_scale <= 1):
        ap.error("--scale and --k-scale must be in (0, 1]")

    import brian2 as b2
    from brian2 import Hz, ms, mV, pA, pF, second

    rng = np.random.default_rng(args.seed)
    spec = pd14_spec()
    n_total = int(round(sum(FULL_SIZES) * args.scale))
    sizes = population_sizes(spec, n_total)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    k = args.k_scale
    K_full = full_indegree(spec)
    idx = {n: i for i, n in enumerate(spec.names)}

    # ---- synapses: fixed total number per projection, uniform pairs ------------
    t0 = time.perf_counter()
    pres, posts, ws, ds = [], [], [], []
    J = np.zeros((8, 8))  # mean PSC (pA) per synapse, post x pre, before 1/sqrt(k)
    for proj in spec.projections:
        a, b = idx[proj.post], idx[proj.pre]
        inhib = spec.population(proj.pre).cell_class == "I"
        J[a, b] = (-1 if inhib else 1) * proj.weight * J_PA
        n_syn = int(round(k * K_full[a, b] * sizes[a]))
        if n_syn == 0:
            continue
        pres.append(rng.integers(sizes[b], size=n_syn) + starts[b])
        posts.append(rng.integers(sizes[a], size=n_syn) + starts[a])
        w = rng.normal(J[a, b], abs(J[a, b]) * W_REL_SD, n_syn)
        w = np.where(inhib, np.minimum(w, 0.0), np.maximum(w, 0.0))  # keep Dale's sign
        ws.append(w / math.sqrt(k))
        d_mean = D_I if inhib else D_E
        d = rng.normal(d_mean, d_mean * D_REL_SD, n_syn)
        ds.append(np.maximum(np.round(d / DT), 1) * DT)  # at least one step, on the grid
    pre = np.concatenate(pres).astype(np.int32)
    post = np.concatenate(posts).astype(np.int32)
    weight = np.concatenate(ws)
    delay = np.concatenate(ds)
    # van Albada DC compensation (zero for k = 1), pA
    dc = (1.0 - math.sqrt(k)) * TAU_SYN * 1e-3 * (K_full * J) @ np.array(PUBLISHED)
    t_conn = time.perf_counter() - t0

    # ---- Brian2 network ----------------------------------------------------------
    build_dir = tempfile.mkdtemp(prefix="pd14_standalone_")
    b2.set_device("cpp_standalone", directory=build_dir, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0  # one thread
    b2.defaultclock.dt = DT * ms
    b2.seed(args.seed)
    eqs = """
    dv/dt = (E_L - v)/tau_m + (I + I_dc)/C_m : volt (unless refractory)
    dI/dt = -I/tau_syn : amp
    I_dc : amp (constant)
    """
    ns = dict(E_L=E_L * mV, tau_m=TAU_M * ms, C_m=C_M * pF, tau_syn=TAU_SYN * ms)
    neurons = b2.NeuronGroup(
        n_total,
        eqs,
        threshold="v > V_th",
        reset="v = V_reset",
        refractory=T_REF * ms,
        method="exact",
        namespace=dict(ns, V_th=V_TH * mV, V_reset=V_RESET * mV),
    )
    # PD14 initial condition: V ~ N(-58 mV, 10 mV)
    neurons.v = rng.normal(-58.0, 10.0, n_total) * mV
    neurons.I = 0 * pA
    neurons.I_dc = np.repeat(dc, sizes) * pA
    inputs = []
    for i in range(8):
        sub = neurons[int(starts[i]) : int(starts[i + 1])]
        inputs.append(b2.PoissonInput(sub, "I", N=K_EXT[i], rate=NU_EXT * Hz, weight=f"{J_PA}*pA"))
    syn = b2.Synapses(neurons, neurons, "w : amp (constant)", on_pre="I_post += w")
    syn.connect(i=pre, j=post)
    syn.w = weight * pA
    syn.delay = delay * ms
    spikes = b2.SpikeMonitor(neurons)
    net = b2.Network(neurons, syn, spikes, *inputs)
    t_sim = args.transient + args.duration
    net.run(t_sim * second, namespace={})
    t1 = time.perf_counter()
    b2.device.build(directory=build_dir, compile=True, run=True, debug=False)
    t_build = time.perf_counter() - t1
    run_time = getattr(b2.device, "_last_run_time", None)

    # ---- rates ----------------------------------------------------------------------
    t = np.asarray(spikes.t / second)
    i = np.asarray(spikes.i)
    keep = t >= args.transient
    counts = np.bincount(i[keep], minlength=n_total)
    rows = []
    ok_all = True
    for p, name in enumerate(NAMES):
        rate = counts[starts[p] : starts[p + 1]].mean() / args.duration
        ratio = rate / PUBLISHED[p]
        ok = abs(ratio - 1.0) <= args.tolerance
        ok_all &= ok
        rows.append(
            dict(
                population=name,
                n=int(sizes[p]),
                measured_hz=float(rate),
                published_hz=PUBLISHED[p],
                ratio=float(ratio),
                within=bool(ok),
            )
        )
    shutil.rmtree(build_dir, ignore_errors=True)

    print(
        f"PD14 scaled: neurons x {args.scale} (N = {n_total}), in-degree x {k}, {pre.size:,} synapses, seed {args.seed}"
    )
    print(f"transient {args.transient} s discarded, measured {args.duration} s, dt {DT} ms")
    print(
        f"{'population':<11}{'N':>7}{'measured Hz':>13}{'published Hz':>14}{'ratio':>8}  within ±{args.tolerance:.0%}"
    )
    for r in rows:
        print(
            f"{r['population']:<11}{r['n']:>7}{r['measured_hz']:>13.2f}{r['published_hz']:>14.2f}"
            f"{r['ratio']:>8.2f}  {'yes' if r['within'] else 'NO'}"
        )
    per_s = (run_time / t_sim) if run_time else float("nan")
    print(
        f"connectome sampling {t_conn:.1f} s; build+compile+run {t_build:.1f} s; "
        f"simulation {run_time if run_time else float('nan'):.1f} s = {per_s:.2f} s per biological second"
    )
    print("RESULT:", "all populations within tolerance" if ok_all else "some populations outside tolerance")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                dict(
                    scale=args.scale,
                    k_scale=k,
                    n_neurons=n_total,
                    n_synapses=int(pre.size),
                    seed=args.seed,
                    transient_s=args.transient,
                    duration_s=args.duration,
                    dc_pA=dc.tolist(),
                    rows=rows,
                    all_within=bool(ok_all),
                    sim_time_s=run_time,
                    s_per_bio_s=per_s,
                    build_total_s=t_build,
                ),
                fh,
                indent=2,
            )
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
