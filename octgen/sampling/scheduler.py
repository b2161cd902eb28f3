"""Token-parallel unmasking inside one octree level (MaskGIT-style), apart from the model.

The sampler (:mod:`.sampler`) walks the levels; inside a level it calls
:meth:`LevelScheduler.step_values` S times. Each step the sampler samples every
still-masked token (temperature, top-k, top-p; the fields of a payload jointly when
the model's payload head is autoregressive) and gives each a confidence score; the
scheduler keeps the most confident ones (plus annealed Gumbel noise when
``choice_temperature > 0``) so that after step ``i`` a fraction
``cos(pi/2 * (i + 1) / S)`` of the level is still masked (at least one token is
revealed per step, all by the last).

Confidence (``SamplerConfig.confidence``): ``"logp"`` scores a token by the
log-probability of the value it drew, which favours modal values (single-child
masks: small molecules); ``"maxprob"`` by the log of the largest probability of its
predicted distribution and ``"entropy"`` by minus its entropy, both fixed before the
value is drawn; ``"random"`` reveals in a random order. For an autoregressive
payload the field scores are summed, field f's distribution being conditioned on the
values drawn for fields 0..f-1. ``steps=None`` (or S >= level size) is one
token per step. With ``remask`` the tokens revealed earlier compete again with
their recorded confidence and the least confident may be masked again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CONFIDENCES = ("logp", "maxprob", "entropy", "random")


PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` on ``device``: ``"auto"`` is bf16 on a
    CUDA device that supports it and on a CPU whose oneDNN has bf16 kernels (AVX-512 /
    AMX), fp32 elsewhere (an AVX2-only CPU runs bf16 autocast about 5x slower than fp32)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        try:
            return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
        except (AttributeError, RuntimeError):
            return "fp32"
    return "fp32"


@dataclass
class SamplerConfig:
    """Sampling settings (saved in a checkpoint's ``pipeline.json`` as its defaults).

    Attributes:
        steps: iterations per level S; None = one token per step (S = level size).
        temperature: softmax temperature; 0 = greedy (argmax).
        top_k: keep the k most likely values per field (0 = all).
        top_p: nucleus sampling threshold per field (1.0 = off).
        choice_temperature: scale of the Gumbel noise added to confidences,
            annealed linearly to 0 over a level's steps.
        remask: let earlier tokens of the level be masked again.
        guidance_scale: classifier-free guidance weight (1 = conditional only).
        use_cache: reuse keys / values of finished levels.
        confidence: how tokens are ranked for revealing: ``"logp"``,
            ``"maxprob"``, ``"entropy"`` or ``"random"`` (module docstring).
        precision: ``"fp32"``; ``"bf16"`` to run the model under bfloat16
            autocast (faster on CPUs with AVX-512 / AMX and on GPUs, about 5x
            slower on AVX2-only CPUs, which emulate it; the tokens can differ from
            fp32's and between CPU kinds); ``"auto"``: bf16 where the device runs
            it natively (:func:`resolve_precision`), else fp32.
        leaf_steps: iterations at the leaf (payload) level: 0 = ``steps``, None =
            one token per step, N = N steps. Atoms placed by a pair potential fit
            the atoms revealed before them, so the leaf level gains from more steps.
        level_steps: iterations at chosen structure levels, ``{level: S}`` (S >= 1,
            or None for one token per step), overriding ``steps`` there (the leaf
            level keeps ``leaf_steps``); None / empty: ``steps`` everywhere. In a
            ``pipeline.json`` the levels are JSON object keys (strings).
        leaf_temperature: the temperature of the leaf level's payload (atoms'
            element and offsets, shape codes' bits); None: ``temperature``.
        field_temperatures: per payload field, its temperature (a sequence as
            long as the payload's fields, e.g. an atom's element, x, y, z; None
            entries keep ``leaf_temperature`` / ``temperature``); None: off. A low
            temperature on the element favours the modal element (hydrogen), so the
            element can be sampled hotter than the offsets.
        size_level: for size-conditioned models, the structure level whose total
            number of children is made equal to each row's size condition (its leaf
            count): when a row reveals the last nodes of that level, their child masks
            are drawn jointly, conditioned on the total
            (:func:`sample_masks_with_total`). Right for molecules at level
            ``depth - 2``, whose children are cells no two atoms can share, so their
            count is the atom count. None: off.
        connect: for shapes, N > 0 joins each structure level's children into one
            face-connected part by adding at most N empty cells (inside occupied
            parents) per stray part, after the level's masks are drawn
            (:func:`octgen.sampling.connect.connect_children`). 0: off.
    """

    steps: int | None = 8
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    choice_temperature: float = 0.0
    remask: bool = False
    guidance_scale: float = 1.0
    use_cache: bool = True
    confidence: str = "logp"
    precision: str = "fp32"
    leaf_steps: int | None = 0
    size_level: int | None = None
    leaf_temperature: float | None = None
    field_temperatures: tuple | None = None
    connect: int = 0
    level_steps: dict | None = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1 or None, got {self.steps}")
        for name in ("temperature", "choice_temperature", "guidance_scale"):
            if not 0 <= getattr(self, name) < math.inf:  # also rejects NaN
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.leaf_temperature is not None and not 0 <= self.leaf_temperature < math.inf:
            raise ValueError(f"leaf_temperature must be a finite number >= 0 or None, got {self.leaf_temperature}")
        if self.field_temperatures is not None:
            if isinstance(self.field_temperatures, (str, bytes)) or not hasattr(self.field_temperatures, "__iter__"):
                raise ValueError(f"field_temperatures must be a list of temperatures (or None entries), "
                                 f"got {self.field_temperatures!r}")
            temps = tuple(self.field_temperatures)
            for t in temps:
                if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < math.inf):
                    raise ValueError(f"field_temperatures: each entry must be a finite number >= 0 or None, got {t!r}")
            self.field_temperatures = tuple(None if t is None else float(t) for t in temps) or None
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be above 0 and at most 1, got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.size_level is not None and int(self.size_level) < 0:
            raise ValueError(f"size_level must be a structure level >= 0 or None, got {self.size_level}")
        if isinstance(self.connect, bool) or not isinstance(self.connect, int) or self.connect < 0:
            raise ValueError(f"connect must be a whole number of cells >= 0 (0: off), got {self.connect!r}")
        if self.leaf_steps is not None and int(self.leaf_steps) < 0:
            raise ValueError(f"leaf_steps must be >= 0 (0: as steps) or None, got {self.leaf_steps}")
        if self.level_steps is not None:
            if not isinstance(self.level_steps, dict):
                raise ValueError(f"level_steps must be a mapping of structure level to steps, got {self.level_steps!r}")
            clean = {}
            for level, steps in self.level_steps.items():
                try:
                    d = int(level)
                except (TypeError, ValueError):
                    raise ValueError(f"level_steps: a level is a whole number >= 0, got {level!r}") from None
                if d < 0 or str(d) != str(level).strip():
                    raise ValueError(f"level_steps: a level is a whole number >= 0, got {level!r}")
                if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
                    raise ValueError(f"level_steps: steps of level {d} must be >= 1 or None, got {steps!r}")
                clean[d] = steps
            self.level_steps = clean or None


def filter_logits(logits_NV: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k / nucleus to -inf (keeps at least one value)."""
    if top_k and top_k < logits_NV.shape[-1]:
        kth = torch.topk(logits_NV, top_k, dim=-1).values[..., -1:]
        logits_NV = logits_NV.masked_fill(logits_NV < kth, float("-inf"))
    if top_p < 1.0:
        sorted_l, order = torch.sort(logits_NV, dim=-1, descending=True)
        cum = sorted_l.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_l.softmax(-1) > top_p  # mass before this value already exceeds p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits_NV = logits_NV.masked_fill(drop, float("-inf"))
    return logits_NV


def sample_field(logits_NV: torch.Tensor, cfg: SamplerConfig,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one field and score it for the confidence ranking.

    Args:
        logits_NV: (N, V) logits.
    Returns:
        values_N: (N,) int64 samples; score_N: (N,) their confidence term
        (``cfg.confidence``; 0 for ``"random"``, whose order the scheduler draws).
    """
    logits = logits_NV.float()
    if cfg.temperature == 0:
        v = logits.argmax(-1)
        logprobs = logits.log_softmax(-1)
    else:
        logprobs = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p).log_softmax(-1)
        v = torch.multinomial(logprobs.exp(), 1, generator=generator)[:, 0] if len(logits) else \
            torch.zeros(0, dtype=torch.long, device=logits.device)
    if cfg.confidence == "logp":
        score = logprobs.gather(-1, v[:, None])[:, 0]
    elif cfg.confidence == "maxprob":
        score = logprobs.max(-1).values
    elif cfg.confidence == "entropy":
        lp = logits.log_softmax(-1)
        score = (lp.exp() * lp).nan_to_num().sum(-1)  # minus the entropy of the predicted distribution
    else:
        score = torch.zeros(len(v), device=logits.device)
    return v, score


def sample_fields(field_logits: list[torch.Tensor], cfg: SamplerConfig,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample each field independently (factorised fields).

    Args:
        field_logits: F tensors (N, V_f).
    Returns:
        values_NF: (N, F) int64 samples; score_N: (N,) summed confidence terms.
    """
    values, score = [], 0.0
    for logits in field_logits:
        v, sc = sample_field(logits, cfg, generator)
        values.append(v)
        score = score + sc
    return torch.stack(values, 1), score


_POPCOUNT = torch.tensor([bin(c + 1).count("1") for c in range(255)])  # children of structure class c


def children_per_class(device=None) -> torch.Tensor:
    """(255,) int64 number of children of each structure class (child mask class + 1)."""
    return _POPCOUNT.to(device)


def sample_masks_with_total(logits_KC: torch.Tensor, total: int, cfg: SamplerConfig,
                            generator: torch.Generator | None) -> torch.Tensor:
    """Child masks for K nodes drawn jointly so that their children add up to ``total``.

    The nodes' distributions (temperature, top-k / top-p as in :func:`sample_field`)
    are independent; this samples exactly from their product conditioned on the sum
    of children: each node's distribution over its number of children (1..8), a
    forward pass over the partial sums, a backward draw of each node's count, then
    its mask among the masks with that count. A total below K or above 8K is moved
    to the nearest reachable one. Temperature 0 takes the most likely configuration.

    Args:
        logits_KC: (K, 255) structure logits (class c is child mask c + 1).
        total: children wanted in all.
    Returns:
        (K,) int64 structure classes.
    """
    K = logits_KC.shape[0]
    if K == 0:
        return torch.zeros(0, dtype=torch.long, device=logits_KC.device)
    greedy = cfg.temperature == 0
    lp = filter_logits(logits_KC.double() / (1.0 if greedy else cfg.temperature), cfg.top_k, cfg.top_p)
    lp = lp.log_softmax(-1)
    pc = children_per_class(lp.device)
    onehot = pc[None, :] == torch.arange(1, 9, device=lp.device)[:, None]  # (8, 255)
    masked_lp = torch.where(onehot[None], lp[:, None, :], torch.full_like(lp[:, None, :], float("-inf")))
    per_count = masked_lp.max(-1).values if greedy else masked_lp.logsumexp(-1)  # (K, 8): counts 1..8
    total = min(max(int(total), K), 8 * K)
    neg = float("-inf")
    # alpha[j][s]: best / summed log-probability of the first j nodes having s children
    alpha = [torch.full((8 * K + 1,), neg, dtype=lp.dtype, device=lp.device)]
    alpha[0][0] = 0.0
    for j in range(K):
        shifted = torch.full((8, 8 * K + 1), neg, dtype=lp.dtype, device=lp.device)
        for c in range(1, 9):
            shifted[c - 1, c:] = alpha[j][:8 * K + 1 - c] + per_count[j, c - 1]
        alpha.append(shifted.max(0).values if greedy else shifted.logsumexp(0))
    counts = torch.zeros(K, dtype=torch.long)
    s = total
    for j in range(K - 1, -1, -1):
        cs = torch.arange(1, 9)
        prev = torch.tensor([alpha[j][s - c] if s - c >= 0 else neg for c in range(1, 9)], dtype=lp.dtype)
        w = prev + per_count[j].cpu()
        if greedy:
            c = int(cs[w.argmax()])
        else:
            c = int(cs[torch.multinomial((w - w.max()).exp(), 1, generator=_cpu(generator))])
        counts[j] = c
        s -= c
    masks = torch.where(onehot[counts - 1].to(lp.device), lp, torch.full_like(lp, neg))
    if greedy:
        return masks.argmax(-1)
    probs = (masks - masks.max(-1, keepdim=True).values).exp()
    return torch.multinomial(probs.float(), 1, generator=generator)[:, 0]


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    """The generator when it draws on the CPU (the backward pass draws there), else None."""
    return generator if generator is None or generator.device.type == "cpu" else None


def masked_counts(n_B: torch.Tensor, num_steps: int) -> torch.Tensor:
    """(S, B) number of tokens still masked after each step, per row.

    Cosine schedule ``floor(n cos(pi/2 (i+1)/S))``, made to reveal at least one
    token per step while any is masked, and 0 after the last step.
    """
    S = num_steps
    out = torch.empty(S, n_B.shape[0], dtype=torch.long)
    prev = n_B.clone()
    for i in range(S):
        m = torch.floor(n_B.double() * math.cos(math.pi / 2 * (i + 1) / S)).long()
        m = torch.minimum(m, (prev - 1).clamp(min=0))
        out[i] = m
        prev = m
    return out


class LevelScheduler:
    """Unmasking schedule of one level for a padded batch (see the module docstring).

    Use: ``set_level(valid_BN)``; then for ``i in range(num_steps)``:
    ``tokens, masked = step(i, field_logits, tokens, masked, generator)``.
    """

    def __init__(self, config: SamplerConfig):
        self.config = config
        self.num_steps = 0

    def set_level(self, valid_BN: torch.Tensor, leaf: bool = False, level: int | None = None) -> int:
        """Prepare the schedule for a level with ``valid_BN`` real tokens (the leaf
        level when ``leaf``: ``leaf_steps`` applies; structure ``level``:
        ``level_steps`` applies); returns S."""
        n_B = valid_BN.sum(1).cpu()
        n_max = int(n_B.max()) if n_B.numel() else 0
        steps = self.config.steps
        if leaf and self.config.leaf_steps != 0:
            steps = self.config.leaf_steps
        elif not leaf and level in (self.config.level_steps or {}):
            steps = self.config.level_steps[level]
        self.num_steps = max(1, n_max if steps is None else min(int(steps), n_max))
        self.remaining_SB = masked_counts(n_B, self.num_steps).to(valid_BN.device)
        self.valid_BN = valid_BN
        self.conf_BN = torch.full(valid_BN.shape, float("inf"), device=valid_BN.device)
        return self.num_steps

    def step(self, i: int, field_logits: list[torch.Tensor], tokens_BNF: torch.Tensor, masked_BN: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One unmasking iteration from the logits of independent fields.

        Args:
            i: iteration 0..S-1.
            field_logits: F tensors (B, N, V_f) of logits for every position.
            tokens_BNF: (B, N, F) current values (meaningless where masked).
            masked_BN: (B, N) bool, True where still masked (never on padding).
            generator: drives the samples and the Gumbel noise.
        Returns:
            Updated ``(tokens_BNF, masked_BN)``.
        """
        B, N = masked_BN.shape
        flat = masked_BN.reshape(-1).nonzero()[:, 0]
        values_KF, score_K = sample_fields([lg.reshape(B * N, -1)[flat] for lg in field_logits], self.config,
                                           generator)
        return self.step_values(i, values_KF, score_K, tokens_BNF, masked_BN, generator)

    def step_values(self, i: int, values_KF: torch.Tensor, score_K: torch.Tensor, tokens_BNF: torch.Tensor,
                    masked_BN: torch.Tensor, generator: torch.Generator | None = None):
        """One unmasking iteration from values already drawn for the masked tokens.

        Args:
            i: iteration 0..S-1.
            values_KF: (K, F) new values of the K masked positions, in row-major order.
            score_K: (K,) their confidence scores (higher is revealed first).
            tokens_BNF, masked_BN, generator: as in :meth:`step`.
        Returns:
            Updated ``(tokens_BNF, masked_BN)``.
        """
        cfg = self.config
        B, N = masked_BN.shape
        flat = masked_BN.reshape(-1).nonzero()[:, 0]
        conf = score_K
        if cfg.confidence == "random":
            conf = torch.rand(conf.shape, generator=generator, device=conf.device)
        if cfg.choice_temperature > 0:
            u = torch.rand(conf.shape, generator=generator, device=conf.device).clamp_(1e-20, 1.0)
            conf = conf + cfg.choice_temperature * (1 - (i + 1) / self.num_steps) * -torch.log(-torch.log(u))
        # Masked positions take their new sample; revealed ones keep token and confidence.
        tokens = tokens_BNF.reshape(B * N, -1).clone()
        conf_flat = self.conf_BN.reshape(-1).clone()
        tokens[flat] = values_KF.to(tokens.dtype)
        conf_flat[flat] = conf
        tokens = tokens.view(B, N, -1)
        conf_BN = conf_flat.view(B, N)
        if not cfg.remask:
            conf_BN = torch.where(masked_BN, conf_BN, torch.full_like(conf_BN, float("inf")))
        conf_BN = torch.where(self.valid_BN, conf_BN, torch.full_like(conf_BN, float("inf")))
        # Mask again the `remaining` least confident valid tokens of each row.
        rank = conf_BN.argsort(dim=1, stable=True).argsort(dim=1)
        new_masked = (rank < self.remaining_SB[i][:, None]) & self.valid_BN
        self.conf_BN = conf_BN
        return tokens, new_masked
