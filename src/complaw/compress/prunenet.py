"""PruneNet: calibration-free slicing of FFN intermediate neurons.

Sengupta, Chaudhary & Chakraborty, "You Only Prune Once: Designing Calibration-Free Model
Compression With Policy Learning", ICLR 2025 (arXiv 2501.15296).

**What is removed.** At ratio r every decoder layer keeps

    k = floor((1 - r) * I + 1/2)        (round half up; I = config.intermediate_size)

of its I intermediate neurons: the same rows of gate_proj and up_proj and the matching columns
of down_proj (biases follow their rows). A ratio that leaves k < 1 is a CompressionError. The
model keeps its standard architecture with `config.intermediate_size = k`, so a pruned model
saves and loads with plain transformers. Layers are processed one at a time and each sliced
Linear replaces the old one at once, so memory stays near one model plus one layer's FFN.

**Which neurons stay** is chosen by a policy (registry `POLICIES`, option `policy`, default
`random`, the calibration-free method of the compression-laws paper):

- `random` ("random PruneNet"): a uniform choice of k neurons per layer, from one generator
  seeded with `seed` (deterministic given the seed).
- `magnitude`: deterministic baseline keeping the k neurons with the largest
  ||gate_row|| · ||up_row|| · ||down_col||, a bound on the scale of the neuron's contribution
  act(g·x)(u·x)·d (act: SiLU for llama and qwen2, tanh-GELU for gemma3).
- `learned`: PruneNet's policy learning, below.

**Learned policy.** The aim (paper §3) is to keep the spectrum of the pruned FFN matrix close
to the original's, using the weights only.

- *Features* (per neuron i, from the weights only, standardised within the layer): the energy
  of gate row i along the gate matrix's right singular directions, summed in 8 bands of
  singular values (log (U_ij σ_j)² summed per band), and the log squared norms of gate row i,
  up row i and down column i: 11 numbers, sign-invariant and independent of the layer's size.
- *Network*: a two-layer MLP, Linear(11, hidden) → tanh → Linear(hidden, 1), giving one logit
  per neuron. One network (and one Adam state) is shared by all layers of a model.
- *Sampling*: k neurons without replacement by Gumbel-top-k (a Plackett–Luce sample of the
  logits); its exact log-probability is that of the sampled order of the k picks.
- *Reward*: −KS, the two-sample Kolmogorov–Smirnov distance between the singular values of
  the pruned gate matrix (rows kept), rescaled by sqrt(I / k), and those of the original. The
  rescaling makes the Gram matrix of a uniform row sample an unbiased estimate of the
  original's, so the reward scores the shape of the spectrum, not the energy pruning removes.
- *Training*: REINFORCE; each step draws `samples` selections and uses a leave-one-out mean of
  the other draws' rewards as baseline; Adam with learning rate `lr`. Layers are visited once,
  in order, for `steps` updates each, the network carrying over from one layer to the next.
  The layer keeps the best-reward selection seen: the draws' and the greedy top-k of the
  final logits. A rich progress bar runs per layer. Deterministic given `seed`.

Deviations from the paper, to stay CPU-cheap and well-posed:
(1) the paper's policy maps each raw row of the FFN1 matrix through Linear(d, I) and a learned
vector to a keep probability; raw rows make the score sign-dependent and tie the network to one
width, so we use the 11 spectral/norm features above; (2) the paper samples with
`multinomial` without replacement and scores the sample by the sum of the chosen rows'
log-probabilities; we use Gumbel-top-k and the exact Plackett–Luce log-probability; (3) the
paper's reward is 1/KS of the raw singular values, with no baseline; ours is −KS (bounded) of
the rescaled ones, with a leave-one-out baseline. With raw values the policy learns to keep the
high-norm rows, like `magnitude`; on SmolLM2-135M at r = 0.3 (2,048 WikiText-2 test tokens,
no RFT) that gave loss 11.2 against 9.6 rescaled and 6.7–7.2 for `random` (3 seeds);
(4) the paper trains for several episodes over all layers, keeps the best-reward policy and
samples the final selection from it (and can reuse the policy at other ratios); we make one
pass with a few hundred updates in all, keep each layer's best selection, and do not save the
policy; (5) singular values and directions come from the float32 Gram matrix (eigvalsh /
eigh), computed on one CPU thread; each draw costs one d×d eigenvalue problem (d = hidden
size), about 0.05 s for SmolLM2-135M, so the default budget takes about a minute there.
Options: `steps` (8), `samples` (4), `hidden` (32), `lr` (0.05).
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from complaw.compress.base import METHODS, CompressionMethod
from complaw.compress.options import parse_options, resolve
from complaw.errors import CompressionError
from complaw.models.adapters import ArchitectureAdapter
from complaw.progress import track
from complaw.registry import Registry

DEFAULT_POLICY = "random"
BANDS = 8  # spectral bands of the learned policy's features


def kept_neurons(size: int, ratio: float) -> int:
    """Neurons kept of `size` at `ratio`: (1 - ratio) * size rounded half up; at least 1."""
    keep = math.floor((1.0 - ratio) * size + 0.5)
    if keep < 1:
        raise CompressionError(
            f"ratio {ratio} leaves no FFN neuron of {size}; use a ratio below {1 - 0.5 / size:.4f}"
        )
    return keep


@dataclass(frozen=True)
class FFN:
    """One layer's FFN weights as float32 CPU tensors: gate and up [I, d], down [d, I]."""

    index: int
    gate: torch.Tensor
    up: torch.Tensor
    down: torch.Tensor

    @property
    def size(self) -> int:
        return self.gate.shape[0]

    @classmethod
    def of(cls, layer: nn.Module, adapter: ArchitectureAdapter, index: int) -> FFN:
        def weight(role: str) -> torch.Tensor:
            return adapter.part(layer, role).weight.detach().float().cpu()

        return cls(index, weight("gate_proj"), weight("up_proj"), weight("down_proj"))


class RowPolicy(ABC):
    """Chooses the neurons a layer keeps. Subclasses are dataclasses; their fields are options."""

    @abstractmethod
    def select(self, ffn: FFN, keep: int, generator: torch.Generator) -> torch.Tensor:
        """Indices (in any order) of the `keep` neurons of `ffn` to keep."""


POLICIES: Registry[type[RowPolicy]] = Registry("PruneNet policy", CompressionError)


@POLICIES.register("random")
@dataclass
class RandomPolicy(RowPolicy):
    """A uniform random choice per layer."""

    def select(self, ffn: FFN, keep: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(ffn.size, generator=generator)[:keep]


@POLICIES.register("magnitude")
@dataclass
class MagnitudePolicy(RowPolicy):
    """The neurons with the largest ||gate_row|| · ||up_row|| · ||down_col||."""

    def select(self, ffn: FFN, keep: int, generator: torch.Generator) -> torch.Tensor:
        score = ffn.gate.norm(dim=1) * ffn.up.norm(dim=1) * ffn.down.norm(dim=0)
        return score.topk(keep).indices


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values of `matrix` (ascending), from the eigenvalues of its smaller Gram matrix."""
    gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.sort().values, b.sort().values
    points = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, points, right=True) / len(a)
    cdf_b = torch.searchsorted(b, points, right=True) / len(b)
    return float((cdf_a - cdf_b).abs().max())


def row_features(ffn: FFN) -> torch.Tensor:
    """[I, BANDS + 3] features of each neuron, standardised over the layer (module docstring)."""
    _, directions = torch.linalg.eigh(ffn.gate.T @ ffn.gate)  # right singular vectors of gate
    energy = (ffn.gate @ directions) ** 2  # row i's energy (U_ij σ_j)² along each direction
    bands = torch.stack([band.sum(dim=1) for band in energy.tensor_split(BANDS, dim=1)], dim=1)
    norms = torch.stack([ffn.gate.norm(dim=1), ffn.up.norm(dim=1), ffn.down.norm(dim=0)], dim=1)
    logs = torch.cat([bands, norms**2], dim=1).clamp_min(1e-30).log()
    return (logs - logs.mean(dim=0)) / logs.std(dim=0).clamp_min(1e-6)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside (restored after). The policy's many small eigenvalue
    problems gain little from LAPACK threads, which slow down several-fold on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def gumbel_order(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Plackett–Luce ordering of all items: argsort of logits + Gumbel noise."""
    gumbel = -torch.empty_like(logits).exponential_(generator=generator).log()
    return torch.argsort(logits + gumbel, descending=True)


def plackett_luce_log_prob(logits: torch.Tensor, order: torch.Tensor, picks: int) -> torch.Tensor:
    """Log-probability that sampling without replacement picks order[:picks], in that order."""
    ranked = logits[order]
    remaining = torch.logcumsumexp(ranked.flip(0), dim=0).flip(0)  # logsumexp of ranked[j:]
    return (ranked - remaining)[:picks].sum()


@POLICIES.register("learned")
@dataclass
class LearnedPolicy(RowPolicy):
    """PruneNet's policy learning (see the module docstring)."""

    steps: int = 8
    samples: int = 4
    hidden: int = 32
    lr: float = 0.05
    _net: nn.Module | None = field(default=None, init=False, repr=False)
    _optimizer: torch.optim.Optimizer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("samples", 2), ("hidden", 1)):
            if getattr(self, name) < low:
                raise CompressionError(
                    f"learned policy option {name}={getattr(self, name)} must be >= {low}"
                )
        if not self.lr > 0:
            raise CompressionError(f"learned policy option lr={self.lr} must be > 0")

    def _policy(
        self, n_features: int, generator: torch.Generator
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The shared network and its optimiser, made on first use from `generator`."""
        if self._net is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
                self._net = nn.Sequential(
                    nn.Linear(n_features, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1)
                )
            self._optimizer = torch.optim.Adam(self._net.parameters(), lr=self.lr)
        return self._net, self._optimizer

    def select(self, ffn: FFN, keep: int, generator: torch.Generator) -> torch.Tensor:
        if keep == ffn.size:
            return torch.arange(keep)
        with one_thread():
            return self._learn(ffn, keep, generator)

    def _learn(self, ffn: FFN, keep: int, generator: torch.Generator) -> torch.Tensor:
        spectrum = singular_values(ffn.gate)
        features = row_features(ffn)
        net, optimizer = self._policy(features.shape[1], generator)
        scale = math.sqrt(ffn.size / keep)

        def reward(rows: torch.Tensor) -> float:
            return -ks_distance(singular_values(ffn.gate[rows]) * scale, spectrum)

        best_reward, best_rows = -math.inf, torch.arange(keep)
        with torch.enable_grad():
            for _ in track(range(self.steps), f"PruneNet policy, layer {ffn.index}"):
                logits = net(features).squeeze(1)
                orders = [gumbel_order(logits.detach(), generator) for _ in range(self.samples)]
                rewards = torch.tensor([reward(order[:keep]) for order in orders])
                baseline = (rewards.sum() - rewards) / (self.samples - 1)
                log_probs = torch.stack([plackett_luce_log_prob(logits, o, keep) for o in orders])
                loss = -((rewards - baseline) * log_probs).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                top = int(rewards.argmax())
                if rewards[top] > best_reward:
                    best_reward, best_rows = float(rewards[top]), orders[top][:keep]
        with torch.no_grad():
            greedy = net(features).squeeze(1).topk(keep).indices
        return greedy if reward(greedy) >= best_reward else best_rows


def sliced_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear with only outputs `index` of `linear` (dim 0, biases too) or inputs (dim 1)."""
    index = index.to(linear.weight.device)
    weight = linear.weight.detach().index_select(dim, index)
    bias = linear.bias
    if bias is not None and dim == 0:
        bias = bias.detach().index_select(0, index)
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    out.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if bias is not None:
        out.bias = nn.Parameter(bias.detach(), requires_grad=linear.bias.requires_grad)
    return out


def slice_ffn(layer: nn.Module, adapter: ArchitectureAdapter, keep: torch.Tensor) -> None:
    """Keep only neurons `keep` of `layer`'s FFN: gate/up rows and down columns."""
    for role, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
        adapter.set_part(layer, role, sliced_linear(adapter.part(layer, role), keep, dim))


def _owner(policy: str) -> str:
    return f"prunenet policy {policy!r} (option policy picks one of {', '.join(POLICIES)})"


class PruneNet(CompressionMethod):
    """Calibration-free FFN neuron slicing (see the module docstring)."""

    needs_calibration = False

    def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The policy (default `random`) and every option of that policy, defaults filled in."""
        rest = dict(options)
        policy = rest.pop("policy", DEFAULT_POLICY)
        return {"policy": policy, **resolve(POLICIES.get(policy), rest, _owner(policy))}

    def compress_model(
        self,
        model: PreTrainedModel,
        adapter: ArchitectureAdapter,
        ratio: float,
        calibration: torch.Tensor | None,
        seed: int,
        policy: str = DEFAULT_POLICY,
        **options: Any,
    ) -> PreTrainedModel:
        chooser = parse_options(POLICIES.get(policy), options, _owner(policy))
        keep = kept_neurons(adapter.intermediate_size(model.config), ratio)
        generator = torch.Generator().manual_seed(seed)
        for index, layer in enumerate(adapter.decoder_layers(model)):
            rows = chooser.select(FFN.of(layer, adapter, index), keep, generator)
            slice_ffn(layer, adapter, rows.sort().values)
        setattr(model.config, adapter.intermediate_size_attr, keep)
        return model


METHODS.add("prunenet", PruneNet())
