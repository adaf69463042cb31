"""What every chapter calls first (setup_chapter) and to glue its numbers (glue_values)."""

import numpy as np
import pytest

import tdsae


def test_setup_chapter_resolves_the_settings_and_opens_an_empty_claim_book():
    settings, claims = tdsae.setup_chapter("07_find-td-latents", "tiny", seed=3, n_experiments=12)
    assert (settings.name, settings.seed, settings.n_experiments) == ("tiny", 3, 12)
    assert (claims.chapter, claims.preset, claims.seed, claims.claims) == ("07_find-td-latents", "tiny", 3, [])
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        tdsae.setup_chapter("07_find-td-latents", "huge")


def test_glue_values_glues_plain_numbers_under_their_names(monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    tdsae.glue_values(r=np.float64(0.25), n=np.int64(7), label="trained", nan=np.float32("nan"))
    assert glued["r"] == (0.25, False) and type(glued["r"][0]) is float
    assert glued["n"] == (7, False) and type(glued["n"][0]) is int
    assert glued["label"] == ("trained", False) and np.isnan(glued["nan"][0])


def test_a_range_that_prints_as_one_value_is_said_once():
    assert tdsae.range_phrase([0.9991, 0.9994], ".1%") == "99.9% at every layer"
    assert tdsae.range_phrase([0.981, 0.9994, np.nan], ".1%") == "between 98.1% and 99.9%"
    assert tdsae.range_phrase([2.0], ".2f", where="organism") == "2.00 at every organism"
    assert tdsae.list_phrase([0.214, np.float64(0.18), 0.3], ".2f") == "0.21, 0.18 and 0.30"
    assert tdsae.list_phrase([3, 1], "d") == "3 and 1" and tdsae.list_phrase([np.nan], ".2f") == "not measured"
    assert tdsae.list_phrase([np.int64(2)], "d") == "2"
    assert tdsae.range_phrase([np.nan], ".2f") == "not measured"


def test_an_interval_of_zero_width_is_said_in_words():
    assert tdsae.interval_phrase(0.0, -0.00001, 0.00002, "+.4f") == "+0.0000, the same in every resample"
    assert tdsae.interval_phrase(0.012, 0.004, 0.02, "+.3f") == "+0.012 (95% interval +0.004 to +0.020)"
    assert tdsae.interval_phrase(float("nan"), 0.0, 1.0, ".2f") == "not measured"


def test_a_bound_at_the_end_of_its_scale_is_stated_as_the_value():
    assert tdsae.bound_phrase(0.9999, ".0%") == "100%"
    assert tdsae.bound_phrase(0.97, ".0%") == "at least 97%"
    assert tdsae.bound_phrase(0.0, ".0%") == "at least 0%"  # a lower bound of 0% is a real, if weak, statement
    assert tdsae.bound_phrase(0.001, ".0%", bound="at most") == "0%"
    assert tdsae.bound_phrase(2.0, ".1f") == "at least 2.0"
    with pytest.raises(ValueError, match="'below'"):
        tdsae.bound_phrase(0.5, ".0%", bound="below")


def test_a_side_is_decided_by_the_values():
    other = "the untrained network's"
    assert tdsae.side_phrase([0.43, 0.40], [0.36, 0.36], ".2f", other) == f"above {other} at every layer (by 0.04 to 0.07)"
    assert tdsae.side_phrase([0.27, 0.30], [0.39, 0.42], ".2f", other) == f"below {other} at every layer (by 0.12)"
    assert tdsae.side_phrase([0.5], [0.2], ".2f", other) == f"above {other} (by 0.30)"
    assert tdsae.side_phrase([0.401, 0.4], [0.4, 0.401], ".2f", other) == f"level with {other} at every layer"
    assert (tdsae.side_phrase([0.5, 0.1, 0.3, 0.4], [0.2, 0.3, 0.3, 0.1], ".2f", other)
            == f"above {other} at 2 of 4 layers, below it at 1 and level with it at 1")
    assert tdsae.side_phrase([0.5, 0.1], [0.2, 0.3], ".2f", "x", where="organism") == "above x at 1 of 2 organisms and below it at 1"
    assert tdsae.side_phrase([np.nan], [0.1], ".2f", other) == "not measured"
    with pytest.raises(ValueError, match="as many values"):
        tdsae.side_phrase([0.1, 0.2], [0.1], ".2f", other)


def test_a_population_claim_is_said_with_its_interval_over_organisms():
    claims = tdsae.ClaimBook("08_intervene-on-latents", "tiny", 0, "organism")
    claims.population_finding("spread", "s", [0.1, 0.2, 0.3], ">", 0, "c")
    claims.population_finding("flat", "s", [0.0, 0.0, 0.0], "<", 0, "c")
    claims.population_finding("one", "s", [0.25], ">", 0, "c", per_organism_bound=[0.1])
    assert tdsae.population_phrase(claims, "spread", "+.2f") == "+0.20 (95% interval over organisms -0.05 to +0.45)"
    assert tdsae.population_phrase(claims, "flat", "+.4f") == "+0.0000 in every organism"
    assert tdsae.population_phrase(claims, "one", ".2f", unit="walker") == "0.25 (one network: no interval over networks)"
    with pytest.raises(ValueError, match="no population claim 'absent'"):
        tdsae.population_phrase(claims, "absent", ".2f")


def test_how_claims_are_read_is_said_for_a_population_or_for_one_network():
    reported, holds_when = tdsae.population_reading(3, "below")
    assert "mean over the 3 organisms" in reported and "95% t-interval" in reported
    assert holds_when == "the interval over organisms lies below zero"
    # a pretrained preset's population is one network: no interval over organisms exists to be read
    reported, holds_when = tdsae.population_reading(1, "above", unit="walker")
    assert "organism" not in reported + holds_when and "walker" not in reported + holds_when
    assert "one network" in reported and "over experiments" in reported
    assert holds_when == "that interval lies above zero"


def test_the_studied_network_and_its_control_are_named_for_what_they_are():
    organism = tdsae.network_names(tdsae.resolve_settings("tiny", seed=0))
    assert organism["studied"] == "organism 0" and "step-0" in organism["control"]
    # a pretrained model is no organism, and its control is a re-initialised copy, not a training checkpoint
    smol = tdsae.network_names(tdsae.resolve_settings("smol", seed=0))
    assert smol["studied"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "organism" not in " ".join(smol.values()) and "step-0" not in " ".join(smol.values())
    assert "re-initialised" in smol["control"] and "pretraining" in smol["control_origin"]


def test_a_population_of_one_is_captioned_without_a_mean_or_interval_over_networks():
    three = tdsae.population_marks(3)
    assert three["each"] == "each organism" and "t-interval" in three["mean_bar"] + three["mean_band"]
    # one network: nothing is averaged and no interval over networks exists to be drawn
    one = tdsae.population_marks(1, unit="walker")
    said = " ".join(one.values())
    assert "mean" not in said and "t-interval" not in said and "walker" not in said
    assert all("no interval over networks" in phrase for key, phrase in one.items()
               if key not in ("each", "interval"))
    # a claim's bound comes from the t-interval over networks, or from the one network's interval over experiments
    assert three["interval"] == "the 95% t-interval over organisms"
    assert one["interval"] == "the network's own 95% bootstrap interval over experiments"


def test_a_verdict_says_where_the_interval_over_organisms_lies():
    claims = tdsae.ClaimBook("09_graph-learning", "tiny", 0, "organism")
    claims.population_finding("up", "s", [0.1, 0.2, 0.3], ">", 0, "c")
    claims.population_finding("down", "s", [-0.5, -0.6, -0.55], ">", 0, "c")
    claims.population_finding("across", "s", [-0.1, 0.2, 0.05], "<", 0, "c")
    claims.population_finding("high", "s", [0.9, 0.95, 0.92], ">", 0.85, "c")
    claims.population_finding("one", "s", [0.25], ">", 0, "c", per_organism_bound=[-0.1])
    assert tdsae.verdict_phrase(claims, "up") == "its interval straddles 0"  # -0.05 to +0.45
    assert tdsae.verdict_phrase(claims, "down") == "its interval lies below 0"
    assert tdsae.verdict_phrase(claims, "across") == "its interval straddles 0"
    assert tdsae.verdict_phrase(claims, "high") == "its interval lies above 0.85"
    assert tdsae.verdict_phrase(claims, "one") == "the one network's own bound does not clear 0"
