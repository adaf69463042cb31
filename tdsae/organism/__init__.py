"""The model organism: a small Llama trained by tdsae on task transcripts (the ``tiny`` preset).

Nothing here knows about presets: tdsae.pipeline.organisms turns a preset's settings into these
configs and caches the trained folder.

    result = train_organism("artifacts/organism", OrganismConfig(), TranscriptRecipe(), TrainingConfig())
    model = tdsae.models.load_model(result.path)          # the same path a hub model takes
    evaluate_choice_correlation(model, model.tokenizer)   # {"twostep": r, "gridworld": r}
    in_context_score(model, model.tokenizer).score        # late-episode loss - early-episode loss (< 0: learns)
"""

from __future__ import annotations

from tdsae.organism.corpus import TranscriptRecipe, TranscriptSet, build_batches, simulate_transcripts
from tdsae.organism.evaluation import (ChoiceComparison, InContextScore, compare_choices, evaluate_choice_correlation,
                                      heldout_loss, in_context_score, r_difference)
from tdsae.organism.network import LONGEST_TRANSCRIPT, OrganismConfig, build_organism
from tdsae.organism.tokenizer import build_tokenizer, encode_transcripts
from tdsae.organism.trainer import (TrainingConfig, TrainingResult, list_checkpoints, next_token_loss,
                                    read_training_record, train_organism)

__all__ = [
    "LONGEST_TRANSCRIPT", "ChoiceComparison", "InContextScore", "OrganismConfig", "TrainingConfig", "TrainingResult",
    "TranscriptRecipe", "TranscriptSet", "build_batches", "build_organism", "build_tokenizer",
    "compare_choices", "encode_transcripts", "evaluate_choice_correlation", "heldout_loss", "in_context_score", "list_checkpoints", "next_token_loss",
    "r_difference", "read_training_record", "simulate_transcripts", "train_organism",
]
