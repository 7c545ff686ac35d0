"""
The training loop of `rt2 train`: co-fine-tuning on robot and VQA data, with DAgger rounds.

Reproducible and resumable by construction:
- Which examples form batch k is a pure function of (seed, k): each data stream walks its own
  seeded permutations, so resuming at step k needs no sampler state and gives the same batches.
- There is no dropout and no other randomness in a step; with the same torch thread count the
  same seed gives the same losses and weights (CPU kernels are deterministic for fixed threads).
  On a GPU the run is the same recipe and batches, not bit for bit the same weights (CUDA's
  reductions are not ordered, and bf16 autocast rounds differently).
- The training state (weights, AdamW moments, step, loss history) is saved atomically every
  `checkpoint_every` steps and at DAgger rounds; generated data is cached next to it.
- The learning rate is a function of the step (warm-up, then cosine), so it needs no state.

The loss is cross-entropy on the answer tokens only (the prefix - image, prompt - is input), and
logits are computed only where there is a label: the vocabulary projection over every position
would cost more than the rest of a tiny model's step.
"""
from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from rt2_ros.models.tiny_vla import (
    build_model, build_processor, IMAGE_ID, SPACE_MARK, TinyVLASpec, write_checkpoint,
)
from rt2_ros.sim.rollout import DEFAULT_DECISION_RATE_HZ
from rt2_ros.training.batches import EncodedSet, make_batch, SequenceEncoder
from rt2_ros.training.config import TrainConfig
from rt2_ros.training.device import TrainDevice
from rt2_ros.training.examples import concatenate, ExampleSet
from rt2_ros.training.model import init_for_training, model_spec, parameter_count
import torch
import torch.nn.functional as F

STATE_FILE = 'train_state.pt'
DATA_DIR = 'data'
EXPORT_DIR = 'model'
ROBOT, VQA = 0, 1
GROUNDING_STREAM = 100  # the grounding questions' sampler seed stream


class TrainingError(RuntimeError):
    """Training cannot start or continue (corrupt state, recipe mismatch)."""


@dataclass
class StepLog:
    step: int
    loss: float
    robot_loss: float
    lr: float
    seconds: float


@dataclass
class TrainState:
    step: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    data_seconds: float = 0.0
    dagger_done: int = 0


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_learning_rate at the last step."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.min_learning_rate + (config.learning_rate - config.min_learning_rate) * cosine


def stage_seed(seed: int, stage: int) -> int:
    """Return a VQA stage's data seed, apart from the main VQA data's (seed) and other stages'."""
    return 1000 * (stage + 1) + seed


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values; NaN (without numpy's warning) when there are none."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float('nan')


class StreamSampler:
    """Example indices for one data stream: epoch e is permutation(seed, stream, e)."""

    def __init__(self, size: int, seed: int, stream: int) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.stream = int(stream)
        self._epoch = -1
        self._order = np.arange(0)

    def take(self, start: int, count: int) -> List[int]:
        out = []
        for g in range(start, start + count):
            epoch, pos = divmod(g, self.size)
            if epoch != self._epoch:
                rng = np.random.default_rng([self.seed, self.stream, epoch])
                self._order = rng.permutation(self.size)
                self._epoch = epoch
            out.append(int(self._order[pos]))
        return out


class OrdinalSmoothing:
    """
    Soft targets for integer tokens that stand for quantities (action bins, image coordinates).

    Plain cross-entropy treats bin 130 as exactly as wrong as bin 3 when the label is 128; a
    Gaussian over neighbouring integers (mixed with the one-hot label) tells the model that
    integers are ordered, which a model learning from scratch otherwise discovers slowly. The
    one-hot share keeps the most likely answer on the exact bin.
    """

    def __init__(self, integer_ids: Sequence[int], sigma: float, weight: float) -> None:
        self.ids = torch.as_tensor(list(integer_ids), dtype=torch.long)
        self.sigma = float(sigma)
        self.weight = float(weight)
        width = int(self.ids.max()) + 1 if len(self.ids) else 0
        self.value_of = torch.full((max(width, 1),), -1, dtype=torch.long)
        self.value_of[self.ids] = torch.arange(len(self.ids))
        values = torch.arange(len(self.ids), dtype=torch.float32)
        table = torch.exp(-0.5 * ((values[None, :] - values[:, None]) / max(self.sigma, 1e-6))
                          ** 2)
        self.table = table / table.sum(1, keepdim=True)

    def to(self, device: torch.device) -> 'OrdinalSmoothing':
        """Move the lookup tables to the device the logits are on."""
        self.ids = self.ids.to(device)
        self.value_of = self.value_of.to(device)
        self.table = self.table.to(device)
        return self

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Soft cross-entropy over the integer tokens for (N, V) logits and (N,) labels."""
        values = self.value_of[labels.clamp(min=0, max=len(self.value_of) - 1)]
        target = self.table[values.clamp(min=0)]
        log_probs = torch.log_softmax(logits, dim=-1)[:, self.ids]
        return -(target * log_probs).sum(-1)


def answer_logits(model: Any, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Return (B, T, V) logits at the positions that predict each answer token only."""
    out = model.model(input_ids=batch['input_ids'], pixel_values=batch['pixel_values'],
                      attention_mask=batch['attention_mask'],
                      token_type_ids=batch['token_type_ids'], use_cache=False)
    hidden = out.last_hidden_state
    positions = batch['label_positions']
    picked = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
    return model.lm_head(picked).float()


def answer_loss(model: Any, batch: Dict[str, torch.Tensor],
                smoothing: Optional[OrdinalSmoothing] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (mean loss over answer tokens, per-row mean loss)."""
    logits = answer_logits(model, batch)
    labels = batch['labels']
    per_token = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100,
                                reduction='none').view(labels.shape)
    if smoothing is not None and smoothing.weight > 0 and bool(batch['ordinal'].any()):
        mask = batch['ordinal'] & (labels != -100)
        soft = smoothing.loss(logits[mask], labels[mask])
        per_token = per_token.masked_scatter(
            mask, (1 - smoothing.weight) * per_token[mask] + smoothing.weight * soft)
    valid = (labels != -100).float()
    per_row = (per_token * valid).sum(1) / valid.sum(1).clamp(min=1)
    return (per_token * valid).sum() / valid.sum().clamp(min=1), per_row


class Trainer:
    """Builds data and model for a recipe in an output directory, and trains."""

    def __init__(self, config: TrainConfig, out_dir: Path,
                 log: Callable[[str], None] = print,
                 device: Optional[TrainDevice] = None) -> None:
        """`device` defaults to the CPU in float32 (`rt2 train` picks a GPU when there is one)."""
        config.validate()
        self.config = config
        self.out = Path(out_dir)
        self.log = log
        self.device = device or TrainDevice(torch.device('cpu'))
        if self.device.device.type == 'cuda':
            torch.set_float32_matmul_precision('high')  # TF32 for whatever is not autocast
        self.spec: TinyVLASpec = model_spec(config.model, config.seed)
        self.processor = build_processor(self.spec)
        self.tokenizer = self.processor.tokenizer
        self.encoder = SequenceEncoder(self.tokenizer, self.spec.image_tokens, IMAGE_ID)
        torch.set_num_threads(int(config.threads))
        self.model = build_model(self.spec, len(self.tokenizer))
        if config.structured_init:
            init_for_training(self.model, self.tokenizer, self.spec)
        self.model.to(self.device.device)
        self.model.train()
        integer_ids = self.tokenizer.convert_tokens_to_ids(
            [f'{SPACE_MARK}{k}' for k in range(self.spec.int_tokens)])
        self.smoothing = OrdinalSmoothing(integer_ids, config.ordinal_sigma,
                                          config.ordinal_weight).to(self.device.device)
        self.optimizer = self._optimizer()
        self.state = TrainState()
        self.sets: List[EncodedSet] = []
        self.samplers: List[StreamSampler] = []

    # -- setup --------------------------------------------------------------------------------

    def _optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            (no_decay if param.ndim < 2 or 'norm' in name or 'embed' in name else decay).append(
                param)
        return torch.optim.AdamW([
            {'params': decay, 'weight_decay': self.config.weight_decay},
            {'params': no_decay, 'weight_decay': 0.0}], lr=self.config.learning_rate,
            betas=(0.9, 0.98), eps=1e-8)

    def _data_path(self, name: str) -> Path:
        return self.out / DATA_DIR / f'{name}.npz'

    def _cached(self, name: str, make: Callable[[], ExampleSet]) -> ExampleSet:
        path = self._data_path(name)
        if path.is_file():
            return ExampleSet.load(str(path))
        start = time.perf_counter()
        examples = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + '.tmp.npz')
        examples.save(str(tmp))
        os.replace(tmp, path)
        self.state.data_seconds += time.perf_counter() - start
        return examples

    def prepare(self, progress: Optional[Callable[[str, int, int], None]] = None) -> None:
        """Generate (or load cached) robot and VQA data and encode them."""
        from rt2_ros.training.robot_data import robot_examples
        from rt2_ros.training.vqa import question_kinds, vqa_examples

        c = self.config
        size = c.model.image_size
        mixes = [('vqa_questions', c.vqa_questions)] + [
            (f'stage {k + 1}', stage.questions) for k, stage in enumerate(c.stages)]
        for name, weights in mixes:
            try:  # before minutes of robot data generation, not after
                if weights is not None:
                    question_kinds(weights)
            except ValueError as exc:
                raise TrainingError(f'{name}: {exc}') from None
        robot_seeds = c.train_seed_ranges()[0]
        robot = self._cached('robot', lambda: robot_examples(
            robot_seeds, size, split=c.robot_split, label=c.label, workers=c.workers,
            plan=c.robot_plan, families=c.robot_families, grounding=c.grounding_fraction > 0,
            template=c.prompt_template,
            progress=(lambda n: progress('robot episodes', n, len(robot_seeds)))
            if progress else None))
        parts = [robot]
        for k in range(self.state.dagger_done):
            parts.append(ExampleSet.load(str(self._data_path(f'dagger{k}'))))
        sets = [EncodedSet(concatenate(parts), self.encoder)]
        if not c.robot_only:
            vqa = self._cached('vqa', lambda: vqa_examples(
                c.vqa_examples, size, seed=c.seed, weights=c.vqa_questions,
                progress=(lambda n: progress('vqa examples', n, c.vqa_examples))
                if progress else None))
            sets.append(EncodedSet(vqa, self.encoder))
        for k, stage in enumerate(c.stages):
            sets.append(EncodedSet(self._cached(f'stage{k}', lambda stage=stage, k=k: (
                vqa_examples(stage.examples, size, seed=stage_seed(c.seed, k),
                             questions_per_image=2, weights=stage.questions,
                             block_range=(stage.blocks[0], stage.blocks[1])))), self.encoder))
        self.set_streams(sets)
        self._check_lengths()

    def set_streams(self, sets: List[EncodedSet]) -> None:
        """
        Use these data streams: robot (actions and grounding questions), VQA, then the stages.

        The robot set holds the actions and the grounding questions on the same frames; each is
        sampled as its own stream. Stage k's order is seeded as stream 2 + k with or without VQA
        data, so a robot-only run and a co-fine-tuned one with the same stages are the same
        model when the stages end (the paper's ablation: both start from one vision-language
        model).
        """
        c = self.config
        self.sets = list(sets)
        kinds = np.asarray(self.sets[ROBOT].examples.kinds)
        self.robot_rows = np.flatnonzero(kinds == 'robot')
        self.grounding_rows = np.flatnonzero(kinds != 'robot')
        ids = list(range(len(self.sets) - len(c.stages))) + [2 + k for k in range(len(c.stages))]
        sizes = [len(self.robot_rows)] + [len(s) for s in self.sets[1:]]
        self.samplers = [StreamSampler(n, c.seed, i) for n, i in zip(sizes, ids)]
        self.grounding_sampler = StreamSampler(max(1, len(self.grounding_rows)), c.seed,
                                               GROUNDING_STREAM)
        if c.grounding_fraction > 0 and not len(self.grounding_rows):
            raise TrainingError('grounding_fraction > 0 but the robot data has no grounding '
                                'questions (data cached by a recipe without them?)')

    @property
    def stage_streams(self) -> List[int]:
        """Return the prepared streams of the VQA stages: the last len(stages) of them."""
        first = len(self.sets) - len(self.config.stages)
        return list(range(first, len(self.sets))) if self.sets else []

    def stream_names(self) -> List[str]:
        """Name each prepared data stream: robot, vqa (unless robot-only), stage1, stage2, ..."""
        stages = len(self.stage_streams)
        names = ['robot'] + ['vqa'] * (len(self.sets) - 1 - stages)
        return names + [f'stage{k + 1}' for k in range(stages)]

    def _check_lengths(self) -> None:
        longest = max(s.max_length() for s in self.sets)
        if longest > self.spec.max_positions:
            raise TrainingError(f'an example needs {longest} positions, the model has '
                                f'{self.spec.max_positions}')

    # -- state --------------------------------------------------------------------------------

    def save_state(self) -> None:
        path = self.out / STATE_FILE
        tmp = path.with_suffix('.tmp')
        torch.save({'model': self.model.state_dict(), 'optimizer': self.optimizer.state_dict(),
                    'state': self.state.__dict__, 'config': self.config.to_dict()}, tmp)
        os.replace(tmp, path)

    def load_state(self) -> bool:
        """Resume from the output directory's state if there is one; True if resumed."""
        path = self.out / STATE_FILE
        if not path.is_file():
            return False
        try:
            saved = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable state is the same problem
            raise TrainingError(f'cannot read {path}: {exc}') from None
        if saved.get('config') != self.config.to_dict():
            raise TrainingError(f'{self.out} holds a run with another recipe; use a new '
                                'output directory (or the same settings) to resume')
        self.model.load_state_dict(saved['model'])
        self.optimizer.load_state_dict(saved['optimizer'])
        self.state = TrainState(**saved['state'])
        return True

    # -- training -----------------------------------------------------------------------------

    def batch_picks(self, step: int) -> List[Tuple[int, int]]:
        """Return the (stream, example) pairs of batch `step` (a function of seed and step)."""
        c = self.config
        staged = c.stage_at(step)
        if staged is not None:
            stream = self.stage_streams[staged[0]]
            start = staged[1] * c.batch_size
            return [(stream, i) for i in self.samplers[stream].take(start, c.batch_size)]
        n_ground = round(c.batch_size * c.grounding_fraction)
        rest = c.batch_size - n_ground
        n_robot = rest if c.robot_only else max(1, round(rest * c.robot_fraction))
        counts = [n_robot] + ([rest - n_robot] if len(self.sets) > 1 else [])
        picks = [(ROBOT, int(self.robot_rows[i]))
                 for i in self.samplers[ROBOT].take(step * n_robot, n_robot)]
        for stream, count in enumerate(counts[1:], start=1):
            if count:
                start = step * count
                picks += [(stream, i) for i in self.samplers[stream].take(start, count)]
        if n_ground:
            picks += [(ROBOT, int(self.grounding_rows[i]))
                      for i in self.grounding_sampler.take(step * n_ground, n_ground)]
        return picks

    def train_step(self, step: int) -> StepLog:
        tick = time.perf_counter()
        lr = learning_rate(self.config, step)
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        picks = self.batch_picks(step)
        batch = {key: value.to(self.device.device, non_blocking=True)
                 for key, value in make_batch(self.sets, picks).items()}
        with self.device.autocast():
            loss, per_row = answer_loss(self.model, batch, self.smoothing)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        robot_rows = [k for k, (s, i) in enumerate(picks)
                      if s == ROBOT and self.sets[ROBOT].examples.kinds[i] == 'robot']
        robot_loss = float(per_row[robot_rows].detach().mean()) if robot_rows else float('nan')
        return StepLog(step, float(loss.detach()), robot_loss, lr, time.perf_counter() - tick)

    def run(self, until: Optional[int] = None,
            on_step: Optional[Callable[[StepLog], None]] = None) -> TrainState:
        """Train to `until` (default: the recipe's steps), with DAgger rounds on the way."""
        c = self.config
        end = c.steps if until is None else min(int(until), c.steps)
        window: List[StepLog] = []
        while self.state.step < end:
            if self.state.dagger_done < len(c.dagger) and \
                    self.state.step >= c.dagger[self.state.dagger_done].at_step:
                self.dagger_round()
                continue
            log = self.train_step(self.state.step)
            self.state.step += 1
            self.state.train_seconds += log.seconds
            window.append(log)
            if on_step is not None:
                on_step(log)
            if self.state.step % 50 == 0 or self.state.step == end:
                self.state.history.append({
                    'step': self.state.step,
                    'loss': float(np.mean([w.loss for w in window])),
                    'robot_loss': nan_mean([w.robot_loss for w in window]),
                    'lr': log.lr})
                window = []
            # Also at the end of the VQA stages: the state a robot-only ablation branches from.
            if self.state.step % c.checkpoint_every == 0 or self.state.step == end or \
                    self.state.step == c.stage_steps:
                self.save_state()
        return self.state

    # -- DAgger -------------------------------------------------------------------------------

    def dagger_round(self) -> None:
        """Roll out the current model on fresh train seeds; add the expert-labelled states."""
        from rt2_ros.evaluation.lockstep import local_batch_policy, run_lockstep
        from rt2_ros.policy import PolicyConfig
        from rt2_ros.policy.local import LocalTransformersPolicy
        from rt2_ros.training.robot_data import add_frame, planned_answer

        k = self.state.dagger_done
        seeds = self.config.train_seed_ranges()[k + 1]
        path = self._data_path(f'dagger{k}')
        if not path.is_file():
            start = time.perf_counter()
            stage = self.export(self.out / f'dagger{k}-policy', final=False)
            policy = LocalTransformersPolicy(PolicyConfig(
                backend='local', model_path=str(stage), device=str(self.device.device),
                extra={'torch_threads': self.config.threads}))
            self.model.train()
            families = self.config.robot_families or []
            self.log(f'DAgger round {k + 1}: rolling out {len(seeds)} '
                     f'{self.config.robot_split} episodes')
            result = run_lockstep(local_batch_policy(policy), self.config.robot_split, seeds,
                                  family=families[0] if len(families) == 1 else None, batch=32,
                                  label_with_expert=True,
                                  keep_image_size=self.config.model.image_size)
            policy.close()
            wins = sum(e.success for e in result.episodes)
            self.log(f'DAgger round {k + 1}: policy success {wins}/{len(seeds)}, '
                     f'{sum(len(e.states) for e in result.episodes)} states labelled '
                     f'({time.perf_counter() - start:.0f} s)')
            images, examples = [], ExampleSet(
                images=np.zeros((0,) + (self.config.model.image_size,) * 2 + (3,), np.uint8))
            for episode in result.episodes:
                for image, label, points, opening in episode.states:
                    if self.config.robot_plan != 'none':  # labelled as the robot data is
                        label = planned_answer(points, label, self.config.robot_plan, opening)
                    add_frame(examples, len(images), episode.instruction, label,
                              episode.family, template=self.config.prompt_template,
                              opening=opening)
                    images.append(image)
            examples.images = np.stack(images)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + '.tmp.npz')
            examples.save(str(tmp))
            os.replace(tmp, path)
            self.state.data_seconds += time.perf_counter() - start
        self.state.dagger_done = k + 1
        self.prepare()
        self.save_state()

    # -- export -------------------------------------------------------------------------------

    def export(self, out_dir: Optional[Path] = None, final: bool = True,
               extra: Optional[Dict[str, Any]] = None) -> Path:
        """Write the current weights as a checkpoint the `local` backend loads."""
        out = Path(out_dir) if out_dir is not None else self.out / EXPORT_DIR
        self.model.train(False)  # inference mode for the export (same as .eval())
        write_checkpoint(out, self.spec, self.model, self.processor,
                         '(rt2_ros demo VLA trained in the sim, rt2 train)', 'rt2 train',
                         nominal_rate_hz=DEFAULT_DECISION_RATE_HZ)  # the demos' rate
        self.model.train()
        report = {
            'config': self.config.to_dict(),
            'final': final,
            'step': self.state.step,
            'parameters': parameter_count(self.model),
            'train_seconds': round(self.state.train_seconds, 1),
            'data_seconds': round(self.state.data_seconds, 1),
            'history': [{k: None if isinstance(v, float) and math.isnan(v) else v  # JSON
                         for k, v in h.items()} for h in self.state.history],
            'train_seed_ranges': [[r.start, r.stop] for r in self.config.train_seed_ranges()],
            **self.device.describe(),
        }
        report.update(extra or {})
        (out / 'training.json').write_text(json.dumps(report, indent=2), encoding='utf-8')
        (out / 'training_statistics.json').write_text(
            json.dumps(self.statistics(), indent=2), encoding='utf-8')
        return out

    def statistics(self) -> Dict[str, Any]:
        """Describe the training data: sizes, mix, per-family counts, action distribution."""
        from rt2_ros.sim.rollout import ActionExecutor
        from rt2_ros.training.robot_data import answer_action

        out: Dict[str, Any] = {'robot_fraction': self.config.robot_fraction}
        executor = ActionExecutor()
        for k, (name, data) in enumerate(zip(self.stream_names(), self.sets)):
            tags: Dict[str, int] = {}
            for tag in data.examples.tags:
                tags[tag] = tags.get(tag, 0) + 1
            entry: Dict[str, Any] = {'examples': len(data), 'images': int(len(
                data.examples.images)), 'by_type': dict(sorted(tags.items()))}
            if k == ROBOT and len(self.robot_rows):
                bins = np.array([[int(v) for v in answer_action(data.examples.answers[i])
                                  .split()] for i in self.robot_rows])
                values = np.stack([executor.values(b) for b in bins])
                entry['action'] = {
                    'names': list(executor.space.names),
                    'mean': values.mean(0).round(6).tolist(),
                    'std': values.std(0).round(6).tolist(),
                    'q01': np.quantile(values, 0.01, axis=0).round(6).tolist(),
                    'q99': np.quantile(values, 0.99, axis=0).round(6).tolist(),
                    'terminate_fraction': float((bins[:, 0] == 0).mean()),
                }
            out[name] = entry
        return out


def summarize(history: Sequence[Dict[str, float]]) -> str:
    if not history:
        return 'no steps yet'
    last = history[-1]
    return f'step {last["step"]}: loss {last["loss"]:.3f}, robot {last["robot_loss"]:.3f}'
