import pytest

from tdsae import presets
from tdsae.validation import check_task_names


def test_unknown_preset_names_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*full, small, smol, tiny"):
        presets.resolve_settings("huge")


def test_none_takes_preset_value_and_override_wins():
    s = presets.resolve_settings("tiny", n_experiments=None, n_episodes=12)
    assert s.n_experiments == presets.PRESETS["tiny"].n_experiments
    assert s.n_episodes == 12


@pytest.mark.parametrize(
    "knob,value",
    [("n_episodes", 0), ("n_experiments", 2.5), ("gamma", 1.5), ("q_alpha", 0.0), ("device", "tpu"), ("seed", -1),
     ("n_experiments", True)],
)
def test_bad_values_name_knob_and_rule(knob, value):
    with pytest.raises(ValueError, match=rf"bad value {value!r} for setting '{knob}'"):
        presets.resolve_settings("tiny", **{knob: value})


def test_unknown_knob_is_refused():
    with pytest.raises(ValueError, match=r"unknown setting 'n_epsiodes'"):
        presets.resolve_settings("tiny", n_epsiodes=3)


def test_random_episodes_must_leave_learning_episodes():
    with pytest.raises(ValueError, match="n_random_episodes"):
        presets.resolve_settings("tiny", n_episodes=7)


def test_unknown_task_is_refused():
    assert check_task_names("graph") == ("graph",)
    with pytest.raises(ValueError, match=r"unknown task 'bandit'; choose one of: twostep, gridworld, graph"):
        check_task_names(["twostep", "bandit"])


def test_every_knob_is_documented_in_the_table():
    table = presets.preset_table()
    assert set(table.index) == set(presets.KNOBS)
    assert table["meaning"].notna().all()
    assert list(table.columns[:4]) == ["tiny", "smol", "small", "full"]


def test_paper_values_in_every_preset():
    # PAPERS.md §1.3: the reference model and SAE settings the paper reports.
    for p in presets.PRESETS.values():
        assert (p.q_alpha, p.sr_alpha, p.gamma) == (0.1, 0.05, 0.99)
        assert (p.sae_l1, p.sae_lr, p.sae_batch, p.sae_epochs) == (1e-5, 1e-4, 256, 30)
        assert (p.n_experiments, p.n_episodes, p.n_random_episodes) == (100, 30, 7)


def test_full_scale_activations_do_not_fit_in_memory():
    assert presets.activation_bytes("full") == 81 * 18000 * 8192 * 4
    assert presets.activation_bytes("tiny") < 2**30 < presets.activation_bytes("full")


def test_edit_experiments_replays_at_most_the_experiments_played():
    """Fewer experiments played lower the preset's replay count with them; asking for more than were played is
    refused, naming both."""
    assert presets.resolve_settings("tiny").edit_experiments == 100
    assert presets.resolve_settings("tiny", n_experiments=12).edit_experiments == 12
    assert presets.resolve_settings("tiny", n_experiments=12, edit_experiments=5).edit_experiments == 5
    with pytest.raises(ValueError, match=r"'edit_experiments'.*n_experiments=12.*1 \.\. 12"):
        presets.resolve_settings("tiny", n_experiments=12, edit_experiments=13)
