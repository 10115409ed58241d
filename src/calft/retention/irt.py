"""gp-IRT estimates of full-benchmark accuracy from 100 tinyBenchmarks items (reference spec §13).

A bundle holds one benchmark family's IRT parameters (tinyBenchmarks' public release: the "mmlu"
bundle for MMLU, the "lb" bundle for the Open LLM Leaderboard scenarios). For a scenario:

* theta maximizes the Bernoulli log-likelihood of the 100 responses under the multidimensional 2PL
  model p_i = sigmoid(sum_d clip(a_id * theta_d - b_id, -30, 30));
* IRT   = sum of the scenario's example weights times the responses;
* p-IRT = lam * mean(balanced responses on seen items) + (1 - lam) * mean(balanced p on unseen items),
  lam = 100 / #scenario items;
* gp-IRT = lam*_s * IRT + (1 - lam*_s) * p-IRT with the bundle's optimal lam*_s.

Responses may be continuous in [0, 1] (TruthfulQA mc2). No I/O; the bundle is loaded at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

EPS = 1e-10


@dataclass(frozen=True)
class Bundle:
    """IRT parameters of one benchmark family; positions index the family's full item pool."""

    seen_examples: np.ndarray  # item positions of the tiny datasets, scenario after scenario
    examples_weights: dict[str, np.ndarray]  # per scenario: weights of its seen items (IRT estimate)
    A: np.ndarray  # (1, D, N) discriminations
    B: np.ndarray  # (1, D, N) or (1, 1, N) difficulties
    optimal_lambdas: dict[str, float]
    scenarios_position: dict[str, np.ndarray]  # scenario -> its item positions
    subscenarios_position: dict[str, dict[str, np.ndarray]]  # scenario -> subscenario -> positions

    @classmethod
    def from_release(cls, raw: dict) -> Bundle:
        """From one entry of tinyBenchmarks' parameter file (a dict of plain arrays and dicts)."""
        return cls(
            seen_examples=np.asarray(raw["seen_examples"], dtype=np.int64),
            examples_weights={k: np.asarray(v, dtype=float) for k, v in raw["examples_weights"].items()},
            A=np.asarray(raw["irt_parameters"]["A"], dtype=float),
            B=np.asarray(raw["irt_parameters"]["B"], dtype=float),
            optimal_lambdas={k: float(v) for k, v in raw["optimal_lambdas"].items()},
            scenarios_position={k: np.asarray(v, dtype=np.int64) for k, v in raw["scenarios_position"].items()},
            subscenarios_position={
                k: {s: np.asarray(p, dtype=np.int64) for s, p in v.items()}
                for k, v in raw["subscenarios_position"].items()
            },
        )

    @property
    def size(self) -> int:
        return int(max(p.max() for p in self.scenarios_position.values())) + 1

    def seen_of(self, scenario: str, count: int) -> np.ndarray:
        """The scenario's tiny items: its slice of `seen_examples` (scenarios are stored in order)."""
        index = list(self.scenarios_position).index(scenario)
        return self.seen_examples[count * index : count * (index + 1)]


def balance_weights(bundle: Bundle) -> np.ndarray:
    """Per item: #scenario items / (#subscenarios * #subscenario items), so every subscenario
    weighs the same within its scenario."""
    weights = np.ones(bundle.size)
    for scenario, subscenarios in bundle.subscenarios_position.items():
        total = len(bundle.scenarios_position[scenario])
        for positions in subscenarios.values():
            weights[positions] = total / (len(subscenarios) * len(positions))
    return weights


def item_probabilities(theta: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """P(correct) of every item in A/B for ability theta (D,)."""
    logits = np.clip(A * theta.reshape(1, -1, 1) - B, -30, 30).sum(axis=1)
    return 1.0 / (1.0 + np.exp(-logits[0]))


def fit_theta(responses: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Maximum-likelihood ability from responses to the items of A/B (BFGS from 0)."""

    def negative_log_likelihood(theta):
        p = item_probabilities(theta, A, B)
        return -np.sum(responses * np.log(p + EPS) + (1 - responses) * np.log(1 - p + EPS))

    return minimize(negative_log_likelihood, np.zeros(A.shape[1]), method="BFGS").x


def estimate(bundle: Bundle, scenario: str, responses: np.ndarray) -> dict[str, float]:
    """irt, pirt and gpirt of one scenario from the responses to its tiny items, in dataset order."""
    responses = np.asarray(responses, dtype=float)
    seen = bundle.seen_of(scenario, len(responses))
    theta = fit_theta(responses, bundle.A[:, :, seen], bundle.B[:, :, seen])
    y = np.zeros(bundle.size)
    y[seen] = responses
    weights = balance_weights(bundle)
    positions = bundle.scenarios_position[scenario]
    unseen = np.setdiff1d(positions, seen)
    p = item_probabilities(theta, bundle.A, bundle.B)
    lam = len(seen) / len(positions)
    irt = float(np.sum(bundle.examples_weights[scenario] * responses))
    pirt = float(lam * np.mean((weights * y)[seen]) + (1 - lam) * np.mean((weights * p)[unseen]))
    optimal = bundle.optimal_lambdas[scenario]
    return {"irt": irt, "pirt": pirt, "gpirt": optimal * irt + (1 - optimal) * pirt}
