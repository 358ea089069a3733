"""The experiment config: TOML in, checked typed sections out (:mod:`cortexsim.config`), names checked
against the circuit (:func:`cortexsim.anatomy.check_config`)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from cortexsim import ann, config, tasks, transfer
from cortexsim.anatomy import circuit_spec
from cortexsim.assembly import experiment_from_text
from cortexsim.config import Config, config_from_text, load_config
from cortexsim.errors import ConfigError


def test_config_fields_are_typed_sections():
    hints = typing.get_type_hints(Config)
    for name, kind in config.SECTIONS.items():
        assert hints[name] is kind, name
        assert isinstance(getattr(Config(), name), kind)
    assert [f.name for f in dataclasses.fields(Config)] == [*config.SECTIONS, "base"]


def test_the_base_layer_names_agree_with_the_modules_that_build_them():
    assert transfer.TRANSFERS == config.TRANSFER_NAMES
    assert ann.ARCHITECTURES == config.ANN_ARCHITECTURES
    own = [k for k in config.TASK_KINDS if k != config.RECORDED_TASK]  # "recorded" is built from [fit] data
    assert {type(tasks.task_of(config.TaskConfig(kind=k))).__name__ for k in own} == {"CenterOutTask", "MazeTask"}
    with pytest.raises(ConfigError, match=r"\[fit\] data"):
        tasks.task_of(config.TaskConfig(kind=config.RECORDED_TASK))


def test_a_recorded_task_and_a_fit_need_each_other():
    with pytest.raises(ConfigError, match=r'^config: task.kind = "recorded".*\[fit\] data'):
        experiment_from_text('[task]\nkind = "recorded"\n')
    with pytest.raises(ConfigError, match=r'set \[task\] kind = "recorded"'):
        experiment_from_text('[fit]\ndata = "x.nwb"\n')
    assert experiment_from_text('[task]\nkind = "recorded"\n[fit]\ndata = "x.nwb"\n').fit.active


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param('[experiment]\nname = "x"\nseed = 42\n[circuit]\nn_units = 321\n', id="seed-size"),
        pytest.param(
            '[circuit.overrides]\nprobability = { "IT2/3 -> PT5B" = 0.05 }\n'
            'size = { "PV5B" = 300 }\ncut = ["IT2/3 -> IT5A"]\nsilence = ["VIP2/3"]\n',
            id="overrides",
        ),
    ],
)
def test_config_toml_round_trip(text):
    config = config_from_text(text)
    back = config_from_text(config.to_toml())
    assert back.sections == config.sections
    assert back.to_toml() == config.to_toml()
    assert circuit_spec(back) == circuit_spec(config)


def test_config_values_and_file_loading(tmp_path, default_spec):
    path = tmp_path / "exp.toml"
    path.write_text('[experiment]\nseed = 7\n[circuit]\nn_units = 250\n[circuit.overrides]\ncut = ["IT2/3 -> IT5A"]\n')
    config = load_config(path)
    assert config.experiment.seed == 7 and config.circuit.n_units == 250
    assert circuit_spec(config) == default_spec.with_overrides({"cut": ["IT2/3 -> IT5A"]})
    changed = config.with_section("circuit", n_units=400)
    assert changed.circuit.n_units == 400 and config.circuit.n_units == 250
    assert circuit_spec(Config.from_dict({})) == default_spec


def test_config_spec_file_is_resolved_relative_to_config(tmp_path, default_spec):
    spec = default_spec.with_overrides({"size": {"PV5B": 300}})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "my_spec.toml").write_text(spec.to_toml())
    (tmp_path / "sub" / "exp.toml").write_text('[circuit]\nspec = "my_spec.toml"\n')
    assert circuit_spec(load_config(tmp_path / "sub" / "exp.toml")) == spec


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        pytest.param("[circut]\nn_units = 100\n", ["circut", "'circuit'"], id="unknown-section"),
        pytest.param("[circuit]\nn_unit = 5\n", ["n_unit", "'n_units'"], id="unknown-key"),
        pytest.param('[circuit.overrides]\nsizes = { "PV5B" = 3 }\n', ["sizes", "'size'"], id="unknown-override"),
        pytest.param("[circuit]\nn_units = 0\n", ["n_units", "0"], id="zero-units"),
        pytest.param("[circuit]\nn_units = 100.5\n", ["n_units", "100.5"], id="fractional-units"),
        pytest.param('[circuit]\nn_units = "many"\n', ["n_units", "'many'"], id="text-units"),
        pytest.param("[experiment]\nseed = -1\n", ["seed", "-1"], id="negative-seed"),
        pytest.param(
            '[circuit.overrides]\nprobability = { "IT2/3 -> PT5B" = 2.0 }\n', ["IT2/3 -> PT5B", "2.0"], id="probability"
        ),
        pytest.param("[circuit\nn_units = 5\n", ["not valid TOML"], id="bad-toml"),
    ],
)
def test_bad_config_text_raises_config_error(text, needles):
    with pytest.raises(ConfigError) as info:
        experiment_from_text(text, where="exp.toml")
    message = str(info.value)
    assert message.startswith("exp.toml")
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize(
    "text, key",
    [
        ("[train]\nlearning_rate = -1", "train.learning_rate"),
        ("[train]\nbatch_size = 0", "train.batch_size"),
        ("[train]\nlearnig_rate = 0.1", "learning_rate"),
        ("[rate]\ntransfer = 'sigmoid'", "rate.transfer"),
        ("[rate]\nnoise_std = -1.0", "rate.noise_std"),
        ("[task]\nn_targets = 0", "task.n_targets"),
        ("[lif]\nreset = 30.0", "lif"),
        ("[circuit.overrides.tau]\n'PV2/3' = -0.01", "tau"),
        ("[ann]\nlr_final = 0", "ann.lr_final"),
        ("[ann]\nlr_final = 1.5", "ann.lr_final"),
    ],
)
def test_bad_config_values(text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        experiment_from_text(text)


def test_the_anns_learning_rate_decay_is_theirs_unless_ann_says():
    from cortexsim.ann import DEFAULT_TRAIN
    from cortexsim.assembly import ann_train_config

    default = experiment_from_text("[train]\nlr_final = 0.3")
    assert ann_train_config(default, "gru").lr_final == DEFAULT_TRAIN["gru"]["lr_final"]  # not the circuit's
    slow = experiment_from_text("[train]\nlr_final = 0.3\n[ann]\nlr_final = 0.5")
    assert {ann_train_config(slow, arch).lr_final for arch in ("rnn", "gru", "lstm")} == {0.5}
    assert slow.train.lr_final == 0.3
