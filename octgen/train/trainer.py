"""The one training loop, with ``accelerate`` (ARCHITECTURE.md section 6): the OctGen
transformer of any modality (:class:`GeneratorJob`) and whatever other job a
modality offers (the shape VQ-VAE, the shape classifier: :mod:`octgen.train.job`).

``accelerate`` owns devices, mixed precision (bf16 on GPU), gradient accumulation,
multi-GPU / multi-node data parallelism and ``save_state`` / ``load_state``. The
same code trains the shipped CPU model and a large model on a cluster:

    octgen train configs/qm9-xs-stage1.json                # one process (CPU or one GPU)
    octgen train configs/qm9-xs-stage1.json --resume       # continue from the latest state
    accelerate launch --multi_gpu --num_processes 8 -m octgen.cli.main train CONFIG
    accelerate launch --num_machines 2 --machine_rank R --main_process_ip HOST \\
        --main_process_port 29500 --num_processes 16 -m octgen.cli.main train CONFIG

Exact resume: batch ``s`` of process ``p`` is drawn from a generator seeded with
``(seed, s, micro-step, p)`` only, so no data-loader position needs saving; model,
optimiser, LR schedule, EMA and the step counter are in the accelerate state.
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch

from ..errors import InputError
from ..modality import get_modality
from ..model import OctGenTransformer, config_for_size
from .config import TrainConfig
from .job import TrainingJob
from .objective import make_all_levels_batch, make_training_batch


class _StepCounter:
    """Optimiser steps done; saved with the accelerate state."""

    def __init__(self):
        self.step = 0
        self.cpu_seconds = 0.0  # CPU seconds spent training up to ``step`` (learning curves)

    def state_dict(self) -> dict:
        return {"step": self.step, "cpu_seconds": self.cpu_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.cpu_seconds = float(state.get("cpu_seconds", 0.0))


def cosine_with_warmup(warmup: int, total: int, floor: float = 0.05):
    """LR multiplier: linear warmup to 1, then cosine down to ``floor``."""
    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return fn


def batch_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    """The generator that draws one micro-batch; depends on nothing else (exact resume)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 131 + micro) * 65_537 + process)


def sequence_length_order(ds) -> torch.Tensor:
    """Sequence indices sorted by length (node count), for length-bucketed batches."""
    shards = getattr(ds, "shards", ds)
    lengths = torch.from_numpy(shards.offsets[1:] - shards.offsets[:-1])
    return torch.argsort(lengths, stable=True)


def draw_batch(by_length: torch.Tensor, batch_size: int, g: torch.Generator, bucket: int) -> list[int]:
    """``batch_size`` sequence indices. ``bucket == 0``: uniform. Otherwise a
    uniformly drawn anchor plus ``batch_size - 1`` draws among the ``bucket``
    sequences of nearest length around it: batches of similar lengths pad little
    (attention cost grows with the square of the padded length), and every
    sequence is drawn about equally often."""
    n = by_length.numel()
    if bucket <= 0 or bucket >= n:
        return torch.randint(n, (batch_size,), generator=g).tolist()
    anchor = int(torch.randint(n, (1,), generator=g))
    lo = min(max(anchor - bucket // 2, 0), n - bucket)
    pick = torch.cat([torch.tensor([anchor]), lo + torch.randint(bucket, (batch_size - 1,), generator=g)])
    return by_length[pick].tolist()


def _leaves_per_sequence(ds, value: int | None = None) -> torch.Tensor:
    """(len(ds),) int64 leaves of each sequence of a shard dataset; with ``value``
    only the leaves whose first payload field is ``value``."""
    lengths = torch.from_numpy(ds.offsets[1:] - ds.offsets[:-1])
    seq_of_node = torch.repeat_interleave(torch.arange(len(ds)), lengths)
    leaf = ds.level == ds.depth
    if value is not None:
        leaf = leaf & (ds.payload[:, 0] == value)
    return torch.bincount(seq_of_node[leaf], minlength=len(ds))


def size_histogram(ds, num_sizes: int) -> list[int]:
    """Training sequences per leaf count (clipped to ``num_sizes - 1``): the sampler
    draws the size condition from it."""
    return torch.bincount(_leaves_per_sequence(ds).clamp(max=num_sizes - 1), minlength=num_sizes).tolist()


def count_histogram(ds, num_sizes: int, num_counts: int, value: int) -> list[list[int]]:
    """Training sequences per (leaf count, count of leaves whose first payload field
    is ``value``), both clipped as the model clips them: row s is the histogram of
    counts among sequences of size s, from which the sampler draws the count
    condition given the size."""
    leaves = _leaves_per_sequence(ds).clamp(max=num_sizes - 1)
    kind = _leaves_per_sequence(ds, value).clamp(max=num_counts - 1)
    joint = leaves * num_counts + kind
    return torch.bincount(joint, minlength=num_sizes * num_counts).reshape(num_sizes, num_counts).tolist()


def _saved_states(ckpt_dir: Path) -> list[Path]:
    """The complete saved states, oldest first. A state is written as
    ``step_N.partial`` and renamed to ``step_N`` once whole, so a run killed while
    saving leaves only a ``.partial`` folder, which resuming ignores."""
    return sorted(p for p in ckpt_dir.glob("step_*") if p.name[5:].isdigit() and p.is_dir())


def _latest_state(ckpt_dir: Path) -> Path | None:
    states = _saved_states(ckpt_dir)
    return states[-1] if states else None


def build_model(cfg: TrainConfig, modality, tokenizer, depth: int, settings: dict | None = None) -> torch.nn.Module:
    """The module :func:`train` optimises for ``cfg``: the modality's wrapping of a
    transformer of the config's size (``modality.build_model``).

    Args:
        modality: the run's :class:`~octgen.modality.Modality`.
        tokenizer: its tokenizer (None for a modality without one).
        depth: octree depth of the training sequences (the tokenizer's token depth).
        settings: transformer settings fixed by the data (``modality.model_settings``);
            the config's ``model`` entries override them.
    """
    try:
        octcfg = config_for_size(cfg.model_size, depth=depth,
                                 payload_vocab_sizes=tuple(modality.payload_vocab_sizes(tokenizer)),
                                 **{**(settings or {}), **cfg.model})
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"train config: bad model settings ({e})") from None
    return modality.build_model(OctGenTransformer.from_octgen_config(octcfg))


def init_transformer_from(transformer: OctGenTransformer, folder: str | Path) -> list[str]:
    """Copy the weights of a saved transformer (a pipeline folder or its
    ``transformer/``) into ``transformer``; returns the names of the parameters the
    saved one lacks (they keep their init).

    Raises:
        InputError: no weights there, a damaged weights file, or a saved weight this
            model has not, or of another shape.
    """
    from ..weights import DIFFUSERS_WEIGHTS_NAME

    folder = Path(folder)
    found = [f for f in (folder / "transformer" / DIFFUSERS_WEIGHTS_NAME, folder / DIFFUSERS_WEIGHTS_NAME)
             if f.is_file()]
    if not found:
        raise InputError(f"init_from: no transformer weights under {folder}")
    return _load_matching(transformer, found[0], folder, rename=_grow_depth(transformer, found[0]))


def _block_count(names) -> int:
    idx = [int(n.split(".")[1]) for n in names if n.startswith("blocks.")]
    return max(idx) + 1 if idx else 0


def grown_block_index(n_saved: int, n_new: int) -> list[int]:
    """Where the saved blocks go in a deeper model: saved block ``i`` becomes block
    ``floor(i * n_new / n_saved)`` (8 from 4: 0, 2, 4, 6), so the new blocks sit
    between the old ones."""
    return [i * n_new // n_saved for i in range(n_saved)]


def _grow_depth(transformer: OctGenTransformer, weights: Path) -> dict[str, str]:
    """Renames that load a shallower saved transformer into a deeper one; the blocks
    the saved one lacks get zero output projections (attention ``proj`` and the last
    MLP layer), so each starts as the identity and the grown model computes exactly
    what the saved one did. Empty when the depths agree."""
    from safetensors import safe_open

    from ..weights import check_safetensors

    check_safetensors(weights)
    with safe_open(str(weights), framework="pt") as f:
        n_saved = _block_count(f.keys())
    n_new = len(transformer.blocks)
    if n_saved == 0 or n_saved == n_new:
        return {}
    if n_saved > n_new:
        raise InputError(f"init_from: the saved transformer has {n_saved} blocks, this model {n_new}: "
                         f"it can only grow deeper")
    index = grown_block_index(n_saved, n_new)
    with torch.no_grad():
        for j, block in enumerate(transformer.blocks):
            if j not in index:
                for lin in (block.proj, block.mlp[-1]):
                    lin.weight.zero_()
                    lin.bias.zero_()
    print(f"init_from: grew {n_saved} blocks to {n_new}: saved blocks at {index}, the others start as the identity")
    return {f"blocks.{i}.": f"blocks.{j}." for i, j in enumerate(index)}


def init_components_from(components: dict[str, torch.nn.Module], folder: str | Path) -> list[str]:
    """Warm-start every trained component (``Modality.components``) from a saved
    pipeline folder: the transformer from ``transformer/`` (required), any other
    component ``name`` from ``name/model.safetensors`` when the folder has it
    (otherwise it keeps its init). Returns the names of the parameters that kept
    their init (other components' prefixed with ``name.``)."""
    folder = Path(folder)
    fresh = init_transformer_from(components["transformer"], folder)
    for name, component in components.items():
        if name == "transformer":
            continue
        weights = folder / name / "model.safetensors"
        if weights.is_file():
            fresh += [f"{name}.{k}" for k in _load_matching(component, weights, folder / name)]
        else:
            fresh += [f"{name}.{k}" for k in component.state_dict()]
    return fresh


def _load_matching(module: torch.nn.Module, weights: Path, where: Path,
                   rename: dict[str, str] | None = None) -> list[str]:
    """Load ``weights`` into ``module``: every saved weight must exist there with the
    same shape; returns the names of ``module``'s weights the file lacks. ``rename``
    maps saved name prefixes to this module's (``blocks.1.`` -> ``blocks.2.``)."""
    from safetensors.torch import load_file

    from ..weights import check_safetensors

    check_safetensors(weights)
    saved = load_file(str(weights))
    if rename:
        def _renamed(name: str) -> str:
            for a, b in rename.items():
                if name.startswith(a):
                    return b + name[len(a):]
            return name
        saved = {_renamed(k): v for k, v in saved.items()}
    own = module.state_dict()
    for name, w in saved.items():
        if name not in own:
            raise InputError(f"init_from: {where} has weight '{name}', which this model does not")
        if tuple(own[name].shape) != tuple(w.shape):
            raise InputError(f"init_from: weight '{name}' is {tuple(w.shape)} in {where}, "
                             f"{tuple(own[name].shape)} here")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in saved.items()}, strict=False)
    return sorted(set(own) - set(saved))


def export_pipeline(module, ema, out_dir: Path, modality, tokenizer, train_cfg: TrainConfig, step: int,
                    extra: dict | None = None) -> Path:
    """Write the EMA weights (fp16 safetensors) and the tokenizer as a pipeline
    folder (``modality.export``)."""
    export = copy.deepcopy(module).float()
    if ema is not None:
        ema.copy_to(export.parameters())
    extra = {"train_step": step, "train_config": train_cfg.to_dict(), **(extra or {})}
    return modality.export(export, out_dir, tokenizer, train_cfg.sampler, extra)


def _accelerator(cfg: TrainConfig, out: Path):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() else "no"
    return Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum,
                       log_with="tensorboard", step_scheduler_with_optimizer=False,
                       project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs"))), mp


def _check_run_folder(ckpt_dir: Path, out: Path, resume: bool) -> None:
    if resume and _latest_state(ckpt_dir) is None:
        raise InputError(f"--resume: no saved state under {ckpt_dir}")
    if not resume and _latest_state(ckpt_dir) is not None:
        raise InputError(f"{out} already holds a run; pass --resume to continue it or choose another output_dir")


def _save_state(accelerator, ckpt_dir: Path, step: int, keep: int) -> None:
    """``save_state`` into ``step_N.partial``, renamed to ``step_N`` once whole;
    only the ``keep`` newest states stay."""
    accelerator.wait_for_everyone()
    state_dir = ckpt_dir / f"step_{step:08d}"
    partial = state_dir.with_name(state_dir.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)  # left by a run killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(state_dir, ignore_errors=True)
        os.replace(partial, state_dir)
        for old in _saved_states(ckpt_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _log_step(accelerator, out: Path, record: dict, t0: float, max_steps: int, progress: bool) -> None:
    accelerator.log(record, step=record["step"])
    if accelerator.is_main_process:
        with open(out / "train_log.jsonl", "a") as f:
            f.write(json.dumps({**record, "wall_seconds": time.perf_counter() - t0}) + "\n")
    if progress:
        accelerator.print(f"step {record['step']}/{max_steps} loss {record['loss']:.4f} "
                          f"lr {record['lr']:.2e} {time.perf_counter() - t0:.0f}s "
                          f"cpu {record['cpu_seconds']:.0f}s", flush=True)


def _make_batch(cfg: TrainConfig, seqs, n_payload: int, g: torch.Generator):
    if cfg.objective == "all_levels":
        return make_all_levels_batch(seqs, n_payload, g, cfg.node_deletion, cfg.node_deletion_rows,
                                     cfg.node_deletion_size, cfg.level_sampling, cfg.level_loss_scale)
    return make_training_batch(seqs, n_payload, g, cfg.level_sampling)


class GeneratorJob(TrainingJob):
    """The OctGen transformer of the config's modality: its tokenizer, data,
    conditions and export all come from the :class:`~octgen.modality.Modality`."""

    def __init__(self, cfg: TrainConfig, modality):
        self.cfg, self.modality = cfg, modality
        self.settings = modality.settings
        self.tokenizer = self.data = self.by_length = None

    def prepare(self) -> dict:
        self.tokenizer = self.modality.tokenizer()
        self.data = self.modality.prepare_data(self.tokenizer)
        return {"sequences": len(self.data), "depth": self.data.depth}

    def num_items(self) -> int:
        return len(self.data)

    def build(self) -> torch.nn.Module:
        self.by_length = sequence_length_order(self.data)
        module = build_model(self.cfg, self.modality, self.tokenizer, self.data.depth,
                             self.modality.model_settings(self.data))
        if self.cfg.init_from:
            fresh = init_components_from(self.modality.components(module), self.cfg.init_from)
            print(f"initialised from {self.cfg.init_from}" + (f"; new: {', '.join(fresh)}" if fresh else ""))
        m = self.modality.transformer_of(module).cfg
        self.export_extra = {"size_histogram": size_histogram(self.data, m.num_sizes)} if m.num_sizes else {}
        if m.num_counts:
            self.export_extra["count_histogram"] = count_histogram(self.data, m.num_sizes, m.num_counts,
                                                                   m.count_value)
        return module

    def loss(self, model, unwrapped, g: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        idx = draw_batch(self.by_length, cfg.batch_size, g, cfg.length_bucket)
        seqs = [self.data[i] for i in idx]
        batch = _make_batch(cfg, seqs, int(self.data.index["payload_width"]), g).to(device)
        transformer = self.modality.transformer_of(unwrapped)
        loss, stats = self.modality.loss(model, batch, seqs, idx, self.data, g, transformer)
        return loss, {k: stats[k] for k in ("structure_loss", "payload_loss")}

    def on_save(self, unwrapped, ema, step: int, cpu_seconds: float) -> None:
        if self.tokenizer is not None:
            export_pipeline(unwrapped, ema, Path(self.cfg.output_dir) / "pipeline", self.modality, self.tokenizer,
                            self.cfg, step, {**self.export_extra, "train_cpu_seconds": cpu_seconds})


def _optimisation(cfg: TrainConfig, job: TrainingJob, accelerator, model):
    """AdamW on the job's trainable parameters, the cosine schedule, EMA and the step
    counter, prepared by accelerate and registered for ``save_state``."""
    from diffusers.training_utils import EMAModel

    opt = torch.optim.AdamW(job.trainable(model), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(cfg.warmup_steps, cfg.max_steps))
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
    model, opt, sched = accelerator.prepare(model, opt, sched)
    counter = _StepCounter()
    accelerator.register_for_checkpointing(counter)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    return model, opt, sched, ema, counter


def _optimiser_step(cfg: TrainConfig, job: TrainingJob, accelerator, model, unwrapped, opt, step: int):
    """The ``grad_accum`` micro-batches of optimiser step ``step``; returns their
    losses and the last one's stats."""
    model.train()
    losses = []
    for micro in range(cfg.grad_accum):
        g = batch_generator(cfg.seed, step, micro, accelerator.process_index)
        with accelerator.accumulate(model):
            with accelerator.autocast():
                loss, stats = job.loss(model, unwrapped, g, accelerator.device)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses, stats


def make_job(cfg: TrainConfig) -> TrainingJob:
    """The job of ``cfg``: the generator of its modality, or another job the modality offers."""
    modality = get_modality(cfg.modality)(cfg)
    return GeneratorJob(cfg, modality) if cfg.job == "generator" else modality.job(cfg.job)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None,
          prepare_only: bool = False) -> dict:
    """Run (or continue) the training described by ``cfg``: the one training loop
    for every job (see :mod:`octgen.train.job`).

    Args:
        cfg: the run.
        resume: continue from the latest state under ``output_dir/checkpoints``.
        progress: print a line every ``log_every`` steps.
        stop_at: stop (saving a state) at this step; the LR schedule still
            spans ``max_steps``, so a run can be trained in resumable chunks.
        prepare_only: build (or check) the training data, return the job's
            summary of it (``{"sequences", "depth"}`` for the generator) and stop.
    Returns:
        {"step", "loss", "seconds", "output_dir", "parameters", "model", "cpu_seconds"}
        (training CPU-seconds up to the last saved state, over all resumes); ``model``
        is a float32 copy of the trained module with the EMA weights.
    """
    from accelerate.utils import set_seed

    job = make_job(cfg)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    if not prepare_only:
        _check_run_folder(ckpt_dir, out, resume)
    accelerator, mp = _accelerator(cfg, out)
    set_seed(cfg.seed)
    with accelerator.main_process_first():
        summary = job.prepare()
    if prepare_only:
        return summary
    model = job.build()
    n_params = sum(p.numel() for p in model.parameters())
    model, opt, sched, ema, counter = _optimisation(cfg, job, accelerator, model)
    if resume:
        state = _latest_state(ckpt_dir)
        accelerator.load_state(str(state))
        accelerator.print(f"resumed from {state} at step {counter.step}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    accelerator.init_trackers("octgen", config={k: v for k, v in cfg.to_dict().items()
                                                if isinstance(v, (int, float, str, bool))})
    accelerator.print(f"training {n_params:,} parameters on {job.num_items():,} items, device {accelerator.device}, "
                      f"{accelerator.num_processes} process(es), mixed precision {mp}")
    t0, last_loss, window = time.perf_counter(), float("nan"), []
    unwrapped = accelerator.unwrap_model(model)
    cpu0 = time.process_time() - counter.cpu_seconds  # CPU seconds of this process, carried over resumes
    last_step = min(cfg.max_steps, stop_at or cfg.max_steps)
    while counter.step < last_step:
        losses, stats = _optimiser_step(cfg, job, accelerator, model, unwrapped, opt, counter.step)
        window += losses
        sched.step()
        if ema is not None:
            ema.step(unwrapped.parameters())
        counter.step += 1
        if counter.step % cfg.log_every == 0 or counter.step == cfg.max_steps:
            last_loss = sum(window) / len(window)
            window = []
            _log_step(accelerator, out, {"step": counter.step, "loss": last_loss, **stats,
                                         "lr": sched.get_last_lr()[0], "cpu_seconds": time.process_time() - cpu0},
                      t0, cfg.max_steps, progress)
        if counter.step % cfg.save_every == 0 or counter.step == last_step:
            counter.cpu_seconds = time.process_time() - cpu0
            _save_state(accelerator, ckpt_dir, counter.step, cfg.keep_checkpoints)
            if accelerator.is_main_process:
                job.on_save(unwrapped, ema, counter.step, counter.cpu_seconds)
    accelerator.end_training()
    final = copy.deepcopy(unwrapped).float().eval()
    if ema is not None:
        ema.copy_to(final.parameters())
    return {"step": counter.step, "loss": last_loss, "seconds": time.perf_counter() - t0, "output_dir": str(out),
            "parameters": n_params, "model": final, "cpu_seconds": counter.cpu_seconds}
