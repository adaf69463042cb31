"""A language model plays a task, or reads an agent's episodes, as transcripts or stories.

    played = play_task(load_model(path), get_task("twostep"), n_experiments=100, n_episodes=30, seed=0)
    played.trajectory, played.choice_logprobs, played.decision_pos   # a PlayResult

Modules: policy (reading and sampling a choice), result (PlayResult and its files), transcripts
(the organism) and stories (pretrained models), each through a KV cache, dispatch (which of the two).
"""

from tdsae.play.dispatch import play_task, read_choices, render_episodes
from tdsae.play.policy import LM_POLICY_STREAM, restricted_logprobs, sample_choices
from tdsae.play.result import PlayResult, load_played, save_played
from tdsae.play.stories import StoryTokens, play_stories, render_stories, single_token_ids
from tdsae.play.transcripts import CachedBatch, play_transcripts, reads_transcripts

__all__ = ["LM_POLICY_STREAM", "CachedBatch", "PlayResult", "StoryTokens", "load_played", "play_stories",
           "play_task", "play_transcripts", "read_choices", "reads_transcripts", "render_episodes", "render_stories",
           "restricted_logprobs", "sample_choices", "save_played", "single_token_ids"]
