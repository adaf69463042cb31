"""Chapter 13's IOI study on a local 'hub' model: every piece runs end to end on a pretrained-model preset, with the
ablations asked for only, and nothing reaches for the hub."""

import numpy as np

from tdsae.artifacts import ArtifactStore


def test_the_ioi_study_runs_on_a_local_model_with_the_ablations_asked_for(tmp_path, monkeypatch):
    from conftest import saved_local_llama
    from test_circuits import ioi_tokenizer

    import tdsae
    from tdsae.pipeline.circuits import ioi_study, ioi_summary

    saved_local_llama(tmp_path / "lm", ioi_tokenizer(), max_positions=256)
    monkeypatch.setenv("TDSAE_HOME", str(tmp_path / "cache"))
    settings = tdsae.resolve_settings("smol", model=str(tmp_path / "lm"), device="cpu")
    study = ioi_study(settings, n_pairs=16, n_sae_prompts=4, n_shuffles=3, ablations=("resample",),
                      store=ArtifactStore(tmp_path / "cache"))
    assert set(study.effects.ablation) == {"resample"} and len(study.effects) == 2 * 2
    assert set(study.rankings.ablation) <= {"resample"} and study.sae_rows.sum() == 2
    assert set(study.scores.method) >= {"SAE codes", "attribution patching", "untrained network", "shuffled labels"}
    assert len(study.behaviour) == 2 and np.isnan(study.identity_drop) and study.stray_differences is None
    assert str(tmp_path / "lm") in ioi_summary(settings, study)
