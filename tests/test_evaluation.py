"""dqn.evaluation: a population's evaluation plays each policy's episodes side by side, and
they are exactly the episodes a one-policy evaluation plays one after another."""

import gymnasium as gym
import numpy as np
import pytest

from dqn.evaluation import evaluate, evaluate_members


def linear_q(weights: np.ndarray):
    """Q = obs . W with elementwise ops only, so a row's value never depends on the batch."""

    def q(obs: np.ndarray) -> np.ndarray:  # [..., d] -> [..., 2]
        out = np.zeros((*obs.shape[:-1], weights.shape[1]))
        for d in range(weights.shape[0]):
            out += obs[..., d, None].astype(np.float64) * weights[d]
        return out

    return q


class Greedy:
    def __init__(self, q):
        self.q = q

    def act(self, obs: np.ndarray) -> int:
        return int(self.q(obs[None])[0].argmax())


@pytest.mark.parametrize(
    "make",
    [
        lambda: gym.make("CartPole-v1"),
        lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1")),
    ],
)
@pytest.mark.parametrize("width", [1, 3, 7])
def test_side_by_side_episodes_are_the_one_by_one_episodes(make, width):
    rng = np.random.default_rng(2)
    # a balancing policy, and two noisier ones: episodes of 48 steps to the 500-step limit,
    # different lengths within a wave, so envs finish at different steps
    base = np.array([[0, 0.1], [0, 0.5], [0, 4.0], [0, 1.0]])
    weights = [base + rng.normal(0, s, (4, 2)) for s in (0.0, 1.0, 3.0)]
    qs = [linear_q(w) for w in weights]
    expected = [evaluate(Greedy(q), make(), 7, seed=100)[:2] for q in qs]

    def q_values(obs):  # [3, width, 4] -> [3, width, 2], policy i on row i
        return np.stack([q(o) for q, o in zip(qs, obs)])

    envs = [[make() for _ in range(width)] for _ in qs]
    assert evaluate_members(q_values, envs, 7, seed=100) == expected
    assert len({m for m, _ in expected}) == 3  # three different policies, three different means


@pytest.mark.parametrize(
    "episodes, seed, message",
    [
        (0, 0, r"episodes must be in \[1, 1_000_000\], got 0"),  # was a NaN mean of no returns
        (-1, 0, r"episodes must be in \[1, 1_000_000\], got -1"),
        (1, -5, "seed must leave room for its episodes' seeds .* got seed -5 for 1 episodes"),
        (2, 2**32 - 1, r"\(seed \+ i, each in \[0, 2\*\*32 - 1\]\), got seed 4294967295 for 2"),
        (5.0, 0, r"episodes must be an integer, got 5.0"),  # was range()'s TypeError
        (True, 0, r"episodes must be an integer, got True"),
        (1, "7", r"seed must be an integer, got '7'"),
    ],
)
def test_an_evaluation_of_no_episodes_or_out_of_range_seeds_is_refused(episodes, seed, message):
    from dqn.errors import InputError

    policy = Greedy(linear_q(np.ones((4, 2))))
    with pytest.raises(InputError, match=message):
        evaluate(policy, gym.make("CartPole-v1"), episodes, seed)
    mean, _, returns = evaluate(policy, gym.make("CartPole-v1"), 1, 2**32 - 1)  # the last seed
    assert len(returns) == 1 and mean == returns[0]


class Counting(Greedy):
    """A greedy policy that counts the steps it was asked to act on."""

    calls = 0

    def act(self, obs: np.ndarray) -> int:
        self.calls += 1
        return super().act(obs)


def test_an_epsilon_greedy_evaluation_explores_at_epsilon_from_its_own_seeded_generator():
    policy = Counting(linear_q(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0], [1.0, -1.0]])))
    env = gym.make("CartPole-v1")
    greedy = evaluate(policy, env, 5, 10_000)
    assert evaluate(policy, env, 5, 10_000, epsilon=0.0) == greedy  # 0 is the greedy default
    policy.calls = 0
    _, _, returns = evaluate(policy, env, 20, 10_000, epsilon=0.25)
    steps = sum(returns)  # CartPole pays 1 a step
    # The policy is asked only on the steps that do not explore, about 75% of them: 154 of 201
    # under this seed; the bounds are 5 standard deviations of a binomial proportion of 201
    # steps either side of 0.75.
    assert 0.6 < policy.calls / steps < 0.9
    assert evaluate(policy, env, 20, 10_000, epsilon=0.25)[2] == returns  # seeded: the same
    assert evaluate(policy, env, 20, 10_001, epsilon=0.25)[2] != returns
    policy.calls = 0
    evaluate(policy, env, 3, 10_000, epsilon=1.0)
    assert policy.calls == 0  # every action random


def test_an_epsilon_greedy_evaluation_leaves_the_agents_own_generator_as_it_was():
    from dqn import DQNAgent, DQNConfig

    env = gym.make("CartPole-v1")
    config = DQNConfig(hidden_sizes=(8,), learner="numpy")
    agent = DQNAgent(env.observation_space, env.action_space, config)
    state = agent.rng.bit_generator.state
    first = evaluate(agent, env, 3, 5, epsilon=0.5)
    assert agent.rng.bit_generator.state == state  # training's exploration goes on unchanged
    assert evaluate(agent, env, 3, 5, epsilon=0.5) == first


def test_numpy_integers_are_taken_as_seeds_and_episode_counts():
    # A seed from np.arange passed the range checks, then gymnasium's reset refused it.
    policy = Greedy(linear_q(np.ones((4, 2))))
    env = gym.make("CartPole-v1")
    expected = evaluate(policy, env, 3, 20_000)
    assert evaluate(policy, env, np.int32(3), np.arange(20_000, 20_001)[0]) == expected


@pytest.mark.parametrize("epsilon", [-0.1, 1.5, float("nan"), None, "0.1", True])
def test_an_epsilon_outside_0_1_is_refused(epsilon):
    from dqn.errors import InputError

    with pytest.raises(InputError, match="epsilon must be in \\[0, 1\\], got"):
        evaluate(Greedy(linear_q(np.ones((4, 2)))), gym.make("CartPole-v1"), 1, 0, epsilon)


class ShiftedCartPole(gym.Wrapper):
    """CartPole with another action space: ``Discrete(n, start=start)``."""

    def __init__(self, n: int, start: int):
        super().__init__(gym.make("CartPole-v1"))
        self.action_space = gym.spaces.Discrete(n, start=start)

    def step(self, action):
        return self.env.step(int(action) % 2)


@pytest.mark.parametrize("n, start", [(2, 1), (5, 0), (3, -1)])
def test_an_env_with_other_actions_than_the_agent_s_is_refused(n, start):
    # It was run: a Discrete(2, start=1) env got action 0, a Discrete(5) one, with epsilon,
    # actions 3 and 4 that a 2-action agent never takes. A policy that does not say its
    # number of actions (another library's) is taken as it is.
    from dqn.errors import InputError

    policy = Greedy(linear_q(np.ones((4, 2))))
    policy.n_actions = 2
    with pytest.raises(InputError, match=f"has the action space Discrete\\({n}.*the agent 2 act"):
        evaluate(policy, ShiftedCartPole(n, start), 1, 0, epsilon=0.5)
    assert len(evaluate(policy, ShiftedCartPole(2, 0), 1, 0)[2]) == 1
    del policy.n_actions
    assert len(evaluate(policy, ShiftedCartPole(n, start), 1, 0)[2]) == 1


class SeenActions(gym.Wrapper):
    """Records the actions it is sent, and refuses those outside its action space."""

    def __init__(self, env):
        super().__init__(env)
        self.seen = set()

    def step(self, action):
        assert self.action_space.contains(action), f"invalid action {action!r}"
        self.seen.add(int(action))
        return super().step(action)


def test_epsilon_draws_an_adapters_random_actions_from_the_envs_own_actions():
    # An adapter (no n_actions) on a Discrete(3, start=-1) env: epsilon drew from 0..n-1 and
    # sent action 2, which the env does not have.
    env = SeenActions(ShiftedCartPole(3, -1))
    evaluate(Greedy(lambda obs: np.array([0.0, 1.0])), env, 3, 0, epsilon=1.0)  # every step drawn
    assert env.seen == {-1, 0, 1}


def test_epsilon_on_an_env_without_discrete_actions_is_refused_in_one_line():
    from dqn.errors import UnsupportedSpaceError

    class Adapter:  # another library's policy: its action is the env's to judge
        def act(self, obs):
            return np.zeros(1, np.float32)

    env = gym.make("Pendulum-v1")
    said = r"epsilon draws random actions from a Discrete action space; env .Pendulum-v1. has Box"
    with pytest.raises(UnsupportedSpaceError, match=said):
        evaluate(Adapter(), env, 1, 0, epsilon=0.5)
