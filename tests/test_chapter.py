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
