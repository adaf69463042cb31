import math

import pytest

from tdsae.claims import CLAIM_MIME, ClaimBook, ClaimFailed


def test_failed_check_is_fatal_under_tiny_only():
    book = ClaimBook("01_x", "tiny", 0)
    with pytest.raises(ClaimFailed, match="check 'beats_random' of chapter '01_x' failed"):
        book.check("beats_random", "Q beats random", value=-0.1, comparison=">", threshold=0, control="random")
    small = ClaimBook("01_x", "small", 0)
    small.check("beats_random", "Q beats random", value=-0.1, comparison=">", threshold=0, control="random")
    assert small.claims[0].holds is False


def test_finding_never_raises_and_records_outcome():
    book = ClaimBook("07_x", "tiny", 3)
    assert book.finding("td_latent", "r > 0.5", value=0.2, comparison=">", threshold=0.5, control="untrained") is False
    assert book.finding("q_latent", "r > 0.5", value=0.7, comparison=">", threshold=0.5, control="untrained") is True
    rec = book.claims[0].to_record()
    assert {k: rec[k] for k in ("chapter", "name", "kind", "holds", "preset", "seed")} == {
        "chapter": "07_x", "name": "td_latent", "kind": "finding", "holds": False, "preset": "tiny", "seed": 3}


def test_nan_never_holds_and_serialises_as_none():
    book = ClaimBook("07_x", "small", 0)
    assert book.finding("dead", "a dead latent", value=math.nan, comparison="<", threshold=1, control="none") is False
    assert book.claims[0].to_record()["value"] is None


def test_comparisons_are_strict_where_asked():
    book = ClaimBook("c", "small", 0)
    assert book.finding("a", "", value=0, comparison=">", threshold=0, control="") is False
    assert book.finding("b", "", value=0, comparison=">=", threshold=0, control="") is True
    with pytest.raises(ValueError, match="unknown comparison '=='"):
        book.finding("c", "", value=0, comparison="==", threshold=0, control="")
    with pytest.raises(ValueError, match="already recorded"):
        book.finding("a", "", value=0, comparison=">", threshold=0, control="")


def test_mimebundle_carries_the_record():
    book = ClaimBook("c", "tiny", 0)
    book.finding("a", "s", value=1.0, comparison=">", threshold=0, control="ctl", control_value=0.5)
    bundle = book.claims[0]._repr_mimebundle_()
    assert bundle[CLAIM_MIME]["control_value"] == 0.5
    assert "holds" in bundle["text/html"] and "finding" in bundle["text/plain"]


def test_table_has_one_row_per_claim_with_outcome():
    book = ClaimBook("c", "small", 0)
    book.finding("a", "s", value=2.0, comparison=">", threshold=1, control="ctl")
    book.check("b", "s", value=0.0, comparison=">", threshold=1, control="ctl")
    table = book.table()
    assert list(table.index) == ["a", "b"] and list(table["holds"]) == [True, False]


def test_a_finding_not_measured_says_why_and_never_holds():
    book = ClaimBook("06_x", "tiny", 0)
    assert book.not_measured("bf16_matches_fp32", "bf16 matches fp32", "<=", 0.05, "fp32 SAEs",
                             reason="this CPU has no native bf16") is False
    claim = book.claims[0]
    record = claim.to_record()
    assert (record["kind"], record["holds"], record["measured"], record["value"]) == ("finding", False, False, None)
    assert "not measured on this machine: this CPU has no native bf16" in claim._text()
    assert "not measured" in claim._html() and "does not hold" not in claim._html()
    assert list(book.table()["measured"]) == [False]
    with pytest.raises(ValueError, match="'other' is recorded as not measured, so it needs a reason"):
        book.not_measured("other", "s", "<=", 0.05, "c", reason=" ")
    measured = ClaimBook("06_x", "tiny", 0)
    measured.finding("a", "s", value=1.0, comparison=">", threshold=0, control="c")
    assert "measured" not in measured.table().columns  # the column appears only when a claim was not measured


def test_findings_from_a_table_record_one_finding_per_row_in_order():
    import pandas as pd

    book = ClaimBook("07_x", "tiny", 0)
    table = pd.DataFrame({"statement": ["a beats b", "c beats d"], "control": ["b", "d"], "low": [0.2, -0.1],
                          "r_b": [0.3, 0.4]}, index=pd.Index(["a_beats_b", "c_beats_d"], name="name"))
    held = book.findings_from(table, value="low", comparison=">", threshold=0, control_value="r_b")
    assert held == {"a_beats_b": True, "c_beats_d": False}
    assert [(c.name, c.kind, c.value, c.control, c.control_value) for c in book.claims] == [
        ("a_beats_b", "finding", 0.2, "b", 0.3), ("c_beats_d", "finding", -0.1, "d", 0.4)]
    with pytest.raises(ValueError, match=r"lacks columns \['high'\]"):
        book.findings_from(table, value="high", comparison=">", threshold=0)


def test_population_finding_tests_the_interval_over_organisms_and_keeps_every_value():
    book = ClaimBook("07_x", "tiny", 0)
    # consistent across organisms: the t-interval over three (t = 4.30) clears 0
    assert book.population_finding("steady", "", [0.20, 0.25, 0.30], ">", 0, "untrained",
                                   per_organism_bound=[0.1, 0.15, -0.01]) is True
    # one organism the other way: the mean is positive but the interval straddles 0
    assert book.population_finding("flips", "", [0.25, -0.07, 0.30], ">", 0, "untrained") is False
    steady, flips = (c.to_record() for c in book.claims)
    assert steady["population"]["per_organism"] == [0.20, 0.25, 0.30]
    assert steady["population"]["holding"] == 2  # organisms passing on their own bounds
    assert flips["population"]["holding"] == 2
    assert steady["value"] == pytest.approx(0.25 - 4.3027 * 0.05 / 3 ** 0.5, abs=1e-3)
    # for "<" the upper bound is tested
    assert book.population_finding("lower", "", [-0.2, -0.25, -0.3], "<", 0, "c") is True
    assert book.claims[-1].value == pytest.approx(-0.25 + 4.3027 * 0.05 / 3 ** 0.5, abs=1e-3)


def test_population_of_one_tests_its_own_bound_and_serialises():
    book = ClaimBook("07_x", "small", 0)
    assert book.population_finding("one", "", [0.3], ">", 0, "c", per_organism_bound=[-0.01]) is False
    record = book.claims[0].to_record()
    assert record["value"] == -0.01 and record["population"]["low"] is None and record["population"]["n"] == 1
    # the one network may be a pretrained model, so neither the box nor the rule calls it an organism
    assert "1 network:" in book.claims[0]._text() and "organism" not in book.claims[0]._text()


def test_population_finding_across_every_organism_tests_the_worst_one():
    book = ClaimBook("11_x", "tiny", 0)
    # every organism at or above 0: holds, where the t-interval of the same values would straddle 0
    assert book.population_finding("order", "", [0, 1, 0], ">=", 0, "c", across="every") is True
    assert book.population_finding("order_t", "", [0, 1, 0], ">=", 0, "c") is False
    assert book.population_finding("one_late", "", [0, 2, -1], ">=", 0, "c", across="every") is False
    assert book.claims[-1].value == -1 and "worst of 3" in book.claims[-1]._text()
    # with bounds, the worst bound; for "<" the largest
    assert book.population_finding("bounded", "", [0.3, 0.4], ">", 0, "c", per_organism_bound=[0.1, -0.1],
                                   across="every") is False
    assert book.population_finding("below", "", [-0.3, -0.1], "<", 0, "c", across="every") is True
    assert book.claims[-1].value == -0.1
    with pytest.raises(ValueError, match="'some'"):
        book.population_finding("bad", "", [0.1], ">", 0, "c", across="some")


def test_a_finding_over_pairs_of_organisms_names_them_and_takes_the_worst_pair():
    book = ClaimBook("12_x", "tiny", 0)
    assert book.population_finding("pairs", "", [0.01, 0.2, 0.001], "<", 0.05, "null", across="every",
                                   unit="pair of organisms") is False
    assert book.claims[-1].value == 0.2 and "worst of 3 pairs of organisms" in book.claims[-1]._text()
    assert "3 pairs of organisms: 0.01, 0.2, 0.001 (2 of 3 pass alone)" in book.claims[-1]._text()
    # pairs share organisms, so a t-interval over them would count dependent samples as independent
    with pytest.raises(ValueError, match="across='every'"):
        book.population_finding("pairs_t", "", [0.01, 0.02], "<", 0.05, "null", unit="pair of organisms")


def test_population_check_needs_every_organism():
    book = ClaimBook("02_x", "tiny", 0)
    book.population_check("all_pass", "", [0.9, 0.8, 0.85], ">", 0, "untrained")
    assert book.claims[0].value == 0.8
    with pytest.raises(ClaimFailed, match="one_fails"):
        book.population_check("one_fails", "", [0.9, -0.01, 0.85], ">", 0, "untrained")
    with pytest.raises(ValueError, match="one finite value per organism"):
        book.population_finding("nan", "", [0.1, float("nan")], ">", 0, "c")


def test_each_claim_names_the_model_it_is_about():
    """A chapter's claims carry the preset's model; a chapter that studies another model says so from then on."""
    import tdsae

    settings, book = tdsae.setup_chapter("10_x", "tiny")
    book.finding("first", "s", value=1.0, comparison=">", threshold=0, control="c")
    book.model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    book.finding("second", "s", value=1.0, comparison=">", threshold=0, control="c")
    assert [c.to_record()["model"] for c in book.claims] == [settings.model, "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert settings.model == "organism"


def test_a_claim_box_states_its_bar_in_words_not_as_an_assertion():
    book = ClaimBook("ch", "small", 0)
    book.finding("reach", "The probe reaches the paper's accuracy.", value=0.08062, comparison=">=", threshold=0.85,
                 control="none")
    book.finding("negative", "The effect is negative.", value=0.0, comparison="<", threshold=0.0, control="none")
    reach, negative = book.claims
    assert "measured 0.08062; needs at least 0.85" in reach._html() and ">=" not in reach._html()
    assert "measured 0; needs below 0" in negative._html() and "does not hold" in negative._html()
