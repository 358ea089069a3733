"""cortexsim: a six-layer motor-cortex circuit as rate RNN, spiking twin and ANN, compared.

The public API is small; every name below is documented in its module::

    import cortexsim as cs

    config = cs.load_experiment("experiments/smoke.toml")  # every value and name checked
    circuit = cs.build_circuit(config)  # the sampled six-layer M1 connectome
    net, _ = cs.train_rate(config, circuit)  # BPTT, exactly as `cortexsim run` trains it
    rate = cs.evaluate(net, config, "rate")  # held-out metrics and evaluation-set activity
    twin = cs.run_twin(net, config.lif, cs.make_task(config), seed=config.experiment.seed, k=3)
    gru, _ = cs.train_ann(config, "gru")
    ann = cs.evaluate(gru, config, "ann_gru")
    spiking = twin.rates[:-1].mean(axis=1)  # the reach conditions, averaged over trials
    result = cs.compare_models({"rate": rate.activity, "ann:gru": ann.activity, "spiking": spiking}, config)
    print(rate.metrics["rate_position_r2"], twin.metrics["spiking_position_r2"], result.similarity[0])

Layers (``docs/architecture.md``): config -> anatomy -> circuit -> tasks/transfer -> loss ->
models (rate, ann, spiking) -> lesion -> training -> store -> data -> analysis ->
battery/report -> plots -> pipeline/assembly -> sweep -> cli.
"""

from ._version import __version__

_PUBLIC = {
    "build_circuit": "assembly",
    "load_experiment": "assembly",
    "make_ann_model": "assembly",
    "make_rate_network": "assembly",
    "make_task": "assembly",
    "BatteryResult": "battery",
    "Config": "config",
    "load_config": "config",
    "apply_lesion": "lesion",
    "StimProtocol": "stim_config",
    "stimulate": "stim_stage",
    "Evaluation": "evaluation",
    "compare_models": "compare_stage",
    "evaluate": "evaluation",
    "run_experiment": "pipeline",
    "train_ann": "ann_stage",
    "train_rate": "pipeline",
    "TwinResult": "spiking.twin",
    "run_twin": "spiking.twin",
}
"""Public name -> the module that defines it.  Imported on first use (PEP 562), so that
``import cortexsim`` -- and the ``cortexsim`` command's start-up, which must set its signal
handlers before the heavy imports -- costs nothing until a name is used."""


def __getattr__(name: str) -> object:
    """The public name ``name``, imported from its module on first use."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'cortexsim' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the public ones not yet imported included."""
    return sorted({*globals(), *_PUBLIC})


__all__ = [
    "BatteryResult",
    "Config",
    "Evaluation",
    "StimProtocol",
    "TwinResult",
    "__version__",
    "apply_lesion",
    "build_circuit",
    "compare_models",
    "evaluate",
    "load_config",
    "load_experiment",
    "make_ann_model",
    "make_rate_network",
    "make_task",
    "run_experiment",
    "stimulate",
    "run_twin",
    "train_ann",
    "train_rate",
]
