"""Training loop of the OctGen transformer with ``accelerate`` (ARCHITECTURE.md section 6).

``accelerate`` owns devices, mixed precision (bf16 on GPU), gradient accumulation,
multi-GPU / multi-node data parallelism and ``save_state`` / ``load_state``. The
same code trains the shipped CPU model and a large model on a cluster:

    octgen train configs/qm9-xs.json                       # one process (CPU or one GPU)
    octgen train configs/qm9-xs.json --resume              # continue from the latest state
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
from ..model import OctGenTransformer, config_for_size
from .config import TrainConfig
from .data import prepare_dataset
from ..model.transformer import Condition
from ..sampling.scheduler import SamplerConfig
from .objective import leaf_counts, make_all_levels_batch, make_training_batch, masked_token_loss


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


def size_histogram(ds, num_sizes: int) -> list[int]:
    """Training sequences per leaf count (clipped to ``num_sizes - 1``): the sampler
    draws the size condition from it."""
    lengths = torch.from_numpy(ds.offsets[1:] - ds.offsets[:-1])
    seq_of_node = torch.repeat_interleave(torch.arange(len(ds)), lengths)
    leaves = torch.bincount(seq_of_node[ds.level == ds.depth], minlength=len(ds))
    return torch.bincount(leaves.clamp(max=num_sizes - 1), minlength=num_sizes).tolist()


def _saved_states(ckpt_dir: Path) -> list[Path]:
    """The complete saved states, oldest first. A state is written as
    ``step_N.partial`` and renamed to ``step_N`` once whole, so a run killed while
    saving leaves only a ``.partial`` folder, which resuming ignores."""
    return sorted(p for p in ckpt_dir.glob("step_*") if p.name[5:].isdigit() and p.is_dir())


def _latest_state(ckpt_dir: Path) -> Path | None:
    states = _saved_states(ckpt_dir)
    return states[-1] if states else None


def _model_config(cfg: TrainConfig, depth: int, tokenizer, cond_dim: int | None):
    if cfg.dataset == "shapes":
        try:
            return config_for_size(cfg.model_size, depth=depth, payload_vocab_sizes=(2,) * tokenizer.config.code_bits,
                                   **{"cond_dim": cond_dim, **cfg.model})
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"train config: bad model settings ({e})") from None
    if tokenizer is not None:
        sizes = tuple(tokenizer.payload_vocab_sizes)
    else:
        sizes = tuple(int(v) for v in cfg.synthetic["payload_vocab_sizes"])
    try:
        return config_for_size(cfg.model_size, depth=depth, payload_vocab_sizes=sizes, **cfg.model)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"train config: bad model settings ({e})") from None


def build_model(cfg: TrainConfig, tokenizer, depth: int, cond_dim: int | None = None) -> torch.nn.Module:
    """The module :func:`train` optimises for ``cfg``: the transformer, or for shapes
    a :class:`~octgen.train.objective.ConditionedModel` (transformer + conditioner).

    Args:
        tokenizer: the config's tokenizer (None for synthetic data).
        depth: octree depth of the training sequences (the tokenizer's token depth).
        cond_dim: width of the text encoder's states (shapes only).
    """
    model = OctGenTransformer.from_octgen_config(_model_config(cfg, depth, tokenizer, cond_dim))
    if cfg.dataset == "shapes":
        from ..condition.shape import ShapeConditioner
        from .objective import ConditionedModel
        model = ConditionedModel(model, ShapeConditioner(cond_dim, sketch=cfg.shapes["sketch_encoder"]))
    return model


def export_pipeline(model, ema, out_dir: Path, tokenizer, train_cfg: TrainConfig, step: int,
                    extra: dict | None = None) -> Path:
    """Write the EMA weights (fp16 safetensors) and the tokenizer as a pipeline folder
    (``model`` is the transformer, or for shapes the transformer + conditioner)."""
    from ..pipeline.pipeline import save_pipeline

    export = copy.deepcopy(model).float()
    if ema is not None:
        ema.copy_to(export.parameters())
    extra = {"train_step": step, "train_config": train_cfg.to_dict(), **(extra or {})}
    if train_cfg.dataset == "shapes":
        from ..pipeline.shape import save_shape_pipeline

        return save_shape_pipeline(out_dir, export.transformer, export.conditioner, tokenizer,
                                   text_encoder=train_cfg.shapes["text_encoder"], extra=extra)
    return save_pipeline(out_dir, export, tokenizer, SamplerConfig(**train_cfg.sampler), extra=extra)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or continue) the training described by ``cfg``.

    Args:
        cfg: the run.
        resume: continue from the latest state under ``output_dir/checkpoints``.
        progress: print a line every ``log_every`` steps.
        stop_at: stop (saving a state) at this step; the LR schedule still
            spans ``max_steps``, so a run can be trained in resumable chunks.
    Returns:
        {"step", "loss", "seconds", "output_dir", "parameters", "model", "cpu_seconds"}
        (training CPU-seconds up to the last saved state, over all resumes); ``model``
        is a copy of the trained transformer with the EMA weights.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.training_utils import EMAModel

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    if resume and _latest_state(ckpt_dir) is None:
        raise InputError(f"--resume: no saved state under {ckpt_dir}")
    if not resume and _latest_state(ckpt_dir) is not None:
        raise InputError(f"{out} already holds a run; pass --resume to continue it or choose another output_dir")
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() else "no"
    accelerator = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum,
                              log_with="tensorboard", step_scheduler_with_optimizer=False,
                              project_config=ProjectConfiguration(project_dir=str(out),
                                                                  logging_dir=str(out / "logs")))
    set_seed(cfg.seed)
    tokenizer = None
    shapes = cfg.dataset == "shapes"
    if cfg.dataset == "qm9":
        from ..tokenize.molecule import MoleculeTokenizer
        tokenizer = MoleculeTokenizer()
    elif shapes:
        from ..tokenize.shape_vqvae import load_tokenizer
        tokenizer = load_tokenizer(cfg.shapes["tokenizer"])
    with accelerator.main_process_first():
        if shapes:
            from .shape_data import prepare_shape_data
            sc = cfg.shapes
            ds = prepare_shape_data(tokenizer, sc["tokenizer"], int(sc["num_train"]), int(sc["sketch_views"]),
                                    cfg.seed, sc["text_encoder"])
        else:
            ds = prepare_dataset(cfg, tokenizer)
    n_payload = int(ds.index["payload_width"])
    model = build_model(cfg, tokenizer, ds.depth, int(ds.text_states.shape[-1]) if shapes else None)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(cfg.warmup_steps, cfg.max_steps))
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay) if cfg.ema_decay > 0 else None
    model, opt, sched = accelerator.prepare(model, opt, sched)
    counter = _StepCounter()
    accelerator.register_for_checkpointing(counter)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    if resume:
        state = _latest_state(ckpt_dir)
        accelerator.load_state(str(state))
        accelerator.print(f"resumed from {state} at step {counter.step}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    accelerator.init_trackers("octgen", config={k: v for k, v in cfg.to_dict().items()
                                                if isinstance(v, (int, float, str, bool))})
    accelerator.print(f"training {n_params:,} parameters on {len(ds):,} sequences, device {accelerator.device}, "
                      f"{accelerator.num_processes} process(es), mixed precision {mp}")
    by_length = sequence_length_order(ds)
    t0, last_loss, window = time.perf_counter(), float("nan"), []
    unwrapped = accelerator.unwrap_model(model)
    unwrapped_cfg = (unwrapped.transformer if shapes else unwrapped).cfg
    cpu0 = time.process_time() - counter.cpu_seconds  # CPU seconds of this process, carried over resumes
    export_extra = {"size_histogram": size_histogram(ds, unwrapped_cfg.num_sizes)} if unwrapped_cfg.num_sizes else {}
    last_step = min(cfg.max_steps, stop_at or cfg.max_steps)
    while counter.step < last_step:
        model.train()
        for micro in range(cfg.grad_accum):
            g = batch_generator(cfg.seed, counter.step, micro, accelerator.process_index)
            idx = draw_batch(by_length, cfg.batch_size, g, cfg.length_bucket)
            seqs = [ds[i] for i in idx]
            if cfg.objective == "all_levels":
                batch = make_all_levels_batch(seqs, n_payload, g).to(accelerator.device)
            else:
                batch = make_training_batch(seqs, n_payload, g, cfg.level_sampling).to(accelerator.device)
            cond = Condition(size_B=leaf_counts(seqs).to(accelerator.device)) if unwrapped_cfg.num_sizes else None
            if shapes:
                conds = [t.to(accelerator.device) for t in
                         ds.condition_batch(idx, g, float(cfg.shapes["p_text"]), float(cfg.shapes["p_sketch"]))]
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss, stats = model(batch, *conds) if shapes else masked_token_loss(model, batch, cond)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
            window.append(float(loss.detach()))
        sched.step()
        if ema is not None:
            ema.step(unwrapped.parameters())
        counter.step += 1
        if counter.step % cfg.log_every == 0 or counter.step == cfg.max_steps:
            last_loss = sum(window) / len(window)
            window = []
            cpu_s = time.process_time() - cpu0
            record = {"step": counter.step, "loss": last_loss, "structure_loss": stats["structure_loss"],
                      "payload_loss": stats["payload_loss"], "lr": sched.get_last_lr()[0], "cpu_seconds": cpu_s}
            accelerator.log(record, step=counter.step)
            if accelerator.is_main_process:
                with open(out / "train_log.jsonl", "a") as f:
                    f.write(json.dumps({**record, "wall_seconds": time.perf_counter() - t0}) + "\n")
            if progress:
                accelerator.print(f"step {counter.step}/{cfg.max_steps} loss {last_loss:.4f} "
                                  f"lr {sched.get_last_lr()[0]:.2e} {time.perf_counter() - t0:.0f}s "
                                  f"cpu {cpu_s:.0f}s", flush=True)
        if counter.step % cfg.save_every == 0 or counter.step == last_step:
            counter.cpu_seconds = time.process_time() - cpu0
            accelerator.wait_for_everyone()
            state_dir = ckpt_dir / f"step_{counter.step:08d}"
            partial = state_dir.with_name(state_dir.name + ".partial")
            if accelerator.is_main_process:
                shutil.rmtree(partial, ignore_errors=True)  # left by a run killed while saving
            accelerator.wait_for_everyone()
            accelerator.save_state(str(partial))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                shutil.rmtree(state_dir, ignore_errors=True)
                os.replace(partial, state_dir)
                for old in _saved_states(ckpt_dir)[:-cfg.keep_checkpoints]:
                    shutil.rmtree(old, ignore_errors=True)
                if tokenizer is not None:
                    export_pipeline(unwrapped, ema, out / "pipeline", tokenizer, cfg, counter.step,
                                    {**export_extra, "train_cpu_seconds": counter.cpu_seconds})
    accelerator.end_training()
    final = copy.deepcopy(unwrapped).float().eval()
    if ema is not None:
        ema.copy_to(final.parameters())
    return {"step": counter.step, "loss": last_loss, "seconds": time.perf_counter() - t0, "output_dir": str(out),
            "parameters": n_params, "model": final, "cpu_seconds": counter.cpu_seconds}

