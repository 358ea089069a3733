"""The rate network's kernels: both recurrent paths agree, results are bit-identical for any thread count."""

from __future__ import annotations

import numpy as np
import pytest
from test_rate import PENALTIES, SHORT, directional_check, small_network
from threadpoolctl import threadpool_limits

from cortexsim import _kernels
from cortexsim.lesion import LesionConfig, apply_lesion
from cortexsim.rate import GROUPS, gradient_threads, kernel_path, training_threads
from cortexsim.train import adam_step, new_state


def _problem(n_units=40, seed=0, dtype=np.float64, n_trials=4, **kw):
    rng = np.random.default_rng(seed)
    net = small_network(n_units=n_units, seed=seed, dtype=dtype, **kw)
    batch = SHORT.sample(n_trials, rng)
    noise = net.noise(batch.n_trials, batch.n_steps, rng)
    return net, batch, noise


def _run(net, batch, noise):
    loss, grads, stats = net.loss_and_grad(batch, PENALTIES, noise, w_ref=0.01)
    return loss, {k: g.copy() for k, g in grads.items()}, stats


def _assert_identical(a, b):
    assert a[0] == b[0] and a[2] == b[2]
    for k in GROUPS:
        np.testing.assert_array_equal(a[1][k], b[1][k], err_msg=k)


def test_path_rule_is_a_documented_function_of_size_and_density():
    assert kernel_path(1024, 0.038, np.float32) == "sparse" == kernel_path(64, 0.038, np.float32)
    assert kernel_path(256, 0.18, np.float64) == "sparse"
    assert kernel_path(1024, 0.18, np.float32) == "dense" == kernel_path(40, 0.3, np.float64)
    assert training_threads(1024, 0.038, np.float32) == 1
    assert gradient_threads(1024, 0.038, np.float32) == 2 == gradient_threads(128, 0.038, np.float32)
    assert gradient_threads(100, 0.038, np.float32) == 1
    net = small_network(n_units=40)
    info = net.kernel_info()
    assert info["kernel_path"] == net.kernel_path == kernel_path(40, net.density, net.dtype)
    assert info["blas_threads"] == 1 and info["gradient_threads"] == 1
    assert info["n_synapses"] == int(net.mask.sum()) and 0 < info["density"] < 1


@pytest.mark.parametrize("transfer", ["lif_softplus", "rectified_tanh", "lif"])
def test_sparse_and_dense_paths_agree(transfer):
    net, batch, noise = _problem(transfer=transfer)
    net.kernel = "dense"
    dense = _run(net, batch, noise)
    net.kernel = "sparse"
    assert net.kernel_path == "sparse"
    sparse = _run(net, batch, noise)
    assert sparse[0] == pytest.approx(dense[0], rel=1e-12)
    for k in GROUPS:
        np.testing.assert_allclose(sparse[1][k], dense[1][k], rtol=1e-9, atol=1e-12 * np.abs(dense[1][k]).max())
    simulated = net.simulate(batch, np.random.default_rng(5))
    net.kernel = "dense"
    again = net.simulate(batch, np.random.default_rng(5))
    for field in ("state", "activity", "outputs"):
        np.testing.assert_allclose(getattr(simulated, field), getattr(again, field), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("group", GROUPS)
def test_sparse_path_gradients_match_finite_differences(group):
    net, batch, noise = _problem(seed=3)
    net.kernel = "sparse"
    assert directional_check(net, group, noise, batch, np.random.default_rng(3)) < 1e-6


@pytest.mark.parametrize("group", ["w", "b", "x0"])
def test_sparse_path_with_silenced_units_and_scattered_readout(group):
    net, batch, noise = _problem(seed=7)
    net.kernel = "sparse"
    net = apply_lesion(net, LesionConfig(silence=("IT2/3",)))
    assert directional_check(net, group, noise, batch, np.random.default_rng(7)) < 1e-6
    # readout units that are not consecutive take the indexed (copying) path
    net.out_idx = net.out_idx[::2]
    net.init_params(np.random.default_rng(1))
    assert not isinstance(net._out_rows, slice)
    assert directional_check(net, "w_out", noise, batch, np.random.default_rng(8)) < 1e-6


def test_noise_layout_does_not_change_the_result():
    net, batch, noise = _problem(seed=2)
    assert noise.shape == (batch.n_steps, batch.n_trials, net.n_units)
    assert noise.transpose(0, 2, 1).flags.c_contiguous  # the layout the simulation uses
    a = _run(net, batch, noise)
    b = _run(net, batch, np.ascontiguousarray(noise))  # (time, trials, units) in memory
    _assert_identical(a, b)


def test_fast_softplus_matches_the_stable_form_and_survives_overflow():
    net = small_network(n_units=40, dtype=np.float32)
    phi = net.transfer
    x = np.linspace(-80, 60, 4000, dtype=np.float32).reshape(40, 100)
    out = np.empty_like(x)
    with np.errstate(over="ignore"):
        top = _kernels.softplus(x, out, phi.gain, phi.threshold, phi.softness)
    np.testing.assert_allclose(out, phi(x), rtol=2e-6, atol=1e-30)
    assert top == out.max()
    # a diverging state: exp overflows in the fast form, the network falls back to the stable one
    batch = SHORT.sample(2, np.random.default_rng(0))
    net.params["x0"][:] = 1e3
    net.params["w"][:] = 0.0
    rates = net.simulate(batch).activity
    assert np.all(np.isfinite(rates[:, 0])) and rates[:, 0].max() == pytest.approx(phi(np.float32([1e3]))[0])


@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_weight_gradient_chunks_equal_the_dense_product(path):
    rng = np.random.default_rng(0)
    n, n_steps, n_trials = 60, 13, 5
    mask = rng.random((n, n)) < 0.2
    rec = _kernels.Recurrence(mask, np.ones((n, n)), path, np.float64)
    gx, r = rng.standard_normal((2, n, n_steps, n_trials))
    expected = sum(gx[:, t] @ r[:, t - 1].T for t in range(1, n_steps))[mask]
    results = []
    for threads in (1, 2, 3):
        wg = _kernels.WeightGradient(rec, gx, r, threads)
        for t in range(n_steps - 1, -1, -1):
            wg.step_done(t)
        wg.close()
        results.append(wg.result())
    np.testing.assert_allclose(results[0], expected, rtol=1e-12, atol=1e-12)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    # a backward pass that stops early releases the helper without a result
    wg = _kernels.WeightGradient(rec, gx, r, 2)
    wg.step_done(n_steps - 1)
    wg.close()
    for h in wg._helpers:
        h.join(timeout=10)
        assert not h.is_alive()


def test_chunks_cover_every_step_pair_once_latest_first():
    for n, n_steps in [(40, 2), (256, 150), (1024, 150), (4000, 150), (256, 5)]:
        chunks = _kernels.gradient_chunks(n, n_steps, 4)
        steps = sorted(t for a, b in chunks for t in range(a, b))
        assert steps == list(range(1, n_steps))
        assert [a for a, _ in chunks] == sorted((a for a, _ in chunks), reverse=True)
        assert len(chunks) * n * n * 4 <= max(_kernels.PARTIALS_BYTES, n * n * 4)
    assert _kernels.gradient_chunks(40, 1, 8) == []


@pytest.mark.parametrize("kernel", ["sparse", "dense"])
def test_bit_identical_run_to_run_and_for_any_thread_count(kernel):
    """1 and 2 gradient threads, 1 and 2 BLAS threads: the same bits, and after a few Adam steps too.

    256 units and 8 trials make every GEMM large enough that a 2-thread OpenBLAS
    does split it (m n k > 4 * 65536).
    """
    net, batch, noise = _problem(n_units=256, seed=11, dtype=np.float32, n_trials=8)
    net.kernel = kernel
    start = {k: v.copy() for k, v in net.params.items()}
    outcomes = []
    for blas, threads in [(1, 1), (1, 1), (2, 1), (1, 2), (2, 2)]:
        net.set_params(start)
        net.threads = threads
        state = new_state(net.params, net.param_scales(), np.random.default_rng(1), np.random.default_rng(2))
        state.params = net.params
        with threadpool_limits(blas, user_api="blas"):
            first = _run(net, batch, noise)
            for _ in range(3):
                _, grads, _ = net.loss_and_grad(batch, PENALTIES, noise, w_ref=0.01)
                adam_step(state, grads, lr=0.05, clip_norm=1.0)
                state.iteration += 1
                net.enforce_constraints()
            after = _run(net, batch, noise)
        outcomes.append((first, after, {k: v.copy() for k, v in net.params.items()}))
    runs = [(1, 1), (1, 1), (2, 1), (1, 2), (2, 2)]
    by_blas = {}
    for (blas, _), outcome in zip(runs, outcomes):
        by_blas.setdefault(blas, []).append(outcome)
    for same_blas in by_blas.values():  # any number of gradient threads: the same bits
        for first, after, params in same_blas[1:]:
            _assert_identical(first, same_blas[0][0])
            _assert_identical(after, same_blas[0][1])
            for k in GROUPS:
                np.testing.assert_array_equal(params[k], same_blas[0][2][k])
    # another BLAS thread count may split a GEMM's inner dimension (OpenBLAS 0.3.30 on Haswell does):
    # the same numbers to float32 rounding
    (first1, after1, params1), (first2, after2, params2) = by_blas[1][0], by_blas[2][0]
    assert first2[0] == pytest.approx(first1[0], rel=1e-5) and after2[0] == pytest.approx(after1[0], rel=1e-5)
    for k in GROUPS:
        scale = np.abs(first1[1][k]).max()
        np.testing.assert_allclose(first2[1][k], first1[1][k], rtol=1e-4, atol=1e-5 * scale, err_msg=k)
        np.testing.assert_allclose(params2[k], params1[k], rtol=1e-4, atol=1e-6 * np.abs(params1[k]).max(), err_msg=k)
