"""Graph Learning Task: a random walk on the community graph of Schapiro et al. (2013).

Fifteen nodes form three communities of five (nodes 5c .. 5c + 4 are community c). Inside a
community every pair is linked except its two boundary nodes (5c and 5c + 4); each boundary node
has one edge to a boundary node of a neighbouring community (5c + 4 -- 5(c + 1) mod 15), so the
communities form a ring joined by exactly three edges and every node has degree 4.

There are no actions: the walk moves to a uniformly random neighbour. The walk is continuous;
an "episode" is a segment of max_steps steps, and a new segment starts where the last one ended
(segment ends are marked done and info["truncated"]). Node names are nouns drawn per experiment
from NOUNS, a list of concrete, lowercase object nouns written for this project; the paper drew
them from the category labels of the THINGS database (Hebart et al., 2019), which we do not ship.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdsae.tasks.environment import Task
from tdsae.validation import check_count

N_COMMUNITIES = 3
COMMUNITY_SIZE = 5

# Common words, so that " " + noun is likely one token in GPT-2, SmolLM2 and Llama 3 tokenizers (story play
# refuses a noun that is not, naming it). "shell" replaced "scarf", two tokens for SmolLM2, at the same place
# in sorted order, so the organism's word ids, and so its training, are unchanged.
NOUNS = (
    "apple", "bag", "ball", "banana", "basket", "bed", "bell", "bench", "bottle", "bowl",
    "box", "bread", "brush", "bucket", "cake", "camera", "candle", "car", "chair", "clock",
    "coat", "coin", "cup", "desk", "door", "drum", "egg", "fork", "glass", "guitar",
    "hammer", "hat", "jacket", "key", "knife", "ladder", "lamp", "lemon", "mirror", "nail",
    "pen", "pencil", "phone", "piano", "pillow", "plate", "ring", "rope", "shell", "shirt",
    "shoe", "sock", "spoon", "table", "tent", "towel", "train", "truck", "wallet", "window",
)


def build_adjacency() -> np.ndarray:
    """The Schapiro et al. (2013) graph. Returns: bool [15, 15], symmetric, no self-loops."""
    n = N_COMMUNITIES * COMMUNITY_SIZE
    adjacency = np.zeros((n, n), bool)
    for c in range(N_COMMUNITIES):
        members = np.arange(c * COMMUNITY_SIZE, (c + 1) * COMMUNITY_SIZE)
        adjacency[np.ix_(members, members)] = True
        adjacency[members[0], members[-1]] = adjacency[members[-1], members[0]] = False
        other = ((c + 1) % N_COMMUNITIES) * COMMUNITY_SIZE  # first node of the next community
        adjacency[members[-1], other] = adjacency[other, members[-1]] = True
    np.fill_diagonal(adjacency, False)
    return adjacency


@dataclass(frozen=True)
class GraphTask(Task):
    """Random walks on the 15-node community graph; no actions, reward always 0."""

    max_steps: int = 20  # steps per walk segment ("episode")

    name = "graph"
    n_states = N_COMMUNITIES * COMMUNITY_SIZE
    n_actions = 0
    action_names = ()
    state_names = tuple(f"node {i}" for i in range(N_COMMUNITIES * COMMUNITY_SIZE))
    noise_per_step = 1  # picks the neighbour
    continuing = True

    def __post_init__(self):
        check_count(self.max_steps, "max_steps")

    @property
    def adjacency(self) -> np.ndarray:
        """bool [n_states, n_states]."""
        return build_adjacency()

    @property
    def neighbours(self) -> np.ndarray:
        """Sorted neighbours of each node. Returns: int [n_states, 4]."""
        return np.stack([np.nonzero(row)[0] for row in self.adjacency])

    @property
    def communities(self) -> np.ndarray:
        """Community of each node. Returns: int [n_states]."""
        return np.arange(self.n_states) // COMMUNITY_SIZE

    def community_of(self, node) -> np.ndarray:
        """Community of node(s). Args: node int or [...]. Returns: int, same shape."""
        return np.asarray(node) // COMMUNITY_SIZE

    def draw_experiments(self, rngs):
        names = np.stack([np.asarray(NOUNS)[rng.permutation(len(NOUNS))[:self.n_states]] for rng in rngs])
        start = np.array([rng.integers(self.n_states) for rng in rngs])
        return {"node_names": names, "start": start}  # [n, n_states] str, [n]

    def start_states(self, params, episode, state):
        return params["start"].copy() if episode == 0 else state.copy()

    def transition(self, params, state, action, noise):
        neighbours = self.neighbours
        pick = np.minimum((noise[:, 0] * neighbours.shape[1]).astype(int), neighbours.shape[1] - 1)
        next_state = neighbours[state, pick]
        return next_state, np.zeros(len(state)), np.zeros(len(state), bool), {}

    # story renderer: the walk so far, one noun after another; the next noun is predicted after each comma
    def story_intro(self, experiment_info, experiment):
        return ("In this task you will see a long sequence of objects. Which object comes next "
                "depends only on the current object, following rules that you have to discover.\n"
                "Your goal is to predict the next object in the sequence.\n\n"
                "Sequence:")

    def story_opening(self, experiment_info, experiment, state, episode):
        # segments continue one walk: only the first names where it starts
        return f" {experiment_info['node_names'][experiment][state]}," if episode == 0 else ""

    def story_question(self, experiment_info, experiment, state):
        return ""

    def story_choices(self, experiment_info, experiment, state):
        return [" " + name for name in experiment_info["node_names"][experiment]]

    def story_outcome(self, experiment_info, experiment, state, action, reward, next_state, done):
        name = f" {experiment_info['node_names'][experiment][next_state]}"
        return name + ",", name

    # transcript renderer: the choice at a step is the next node itself
    def transcript_state_tokens(self, experiment_info, experiment):
        return ["gl:" + name for name in experiment_info["node_names"][experiment]]

    def transcript_action_tokens(self, state):
        return []

    def transcript_choice_tokens(self, state_tokens, state):
        return list(state_tokens)

    def transcript_episode_tokens(self, state_tokens, state, episode):
        return [state_tokens[state]] if episode == 0 else []  # segments continue the same walk

    def transcript_outcome_tokens(self, state_tokens, state, action, reward, next_state, done):
        return [state_tokens[next_state]]

    def transcript_tokens(self):
        return {"gl:" + noun for noun in NOUNS}
