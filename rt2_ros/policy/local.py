"""
The `local` backend: a transformers VLA checkpoint from a directory, run in this process.

Why it is built this way:
- Loading uses the auto classes (AutoProcessor + AutoModelForImageTextToText, or the vision2seq
  class of older checkpoints) so any image-text-to-text checkpoint works; `trust_remote_code` is
  turned on only when the checkpoint's config.json declares its own code (`auto_map`, as OpenVLA
  does) - never for a checkpoint that does not ask for it.
- A model is an untrusted text generator, so decoding is constrained: llguidance masks every
  step of `model.generate` to the action language of the codec (rt2_ros.decoding.guided; the
  same regex the openai backend sends to vLLM), and the output is decoded and validated strictly
  again. A checkpoint's own `action_space.yaml` and OpenVLA-style `dataset_statistics.json`
  travel with it, so the model and its action meaning cannot drift.
- One generation path for every architecture, greedy and sampled: `model.generate` with the
  constraint as a LogitsProcessor and a StoppingCriteria that ends a row once its action is
  complete. Batches use left padding, so `rt2 serve` and the sim evaluation batch many
  observations; greedy batched results equal one-at-a-time results.
"""
from collections import OrderedDict
from contextlib import contextmanager
import json
import math
from pathlib import Path
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from rt2_ros.actions import (
    ActionDecodeError, ActionSpace, ActionSpaceError, load_action_space,
    load_dataset_statistics, make_codec, StatisticsError, unnormalizer_from_statistics,
)
from rt2_ros.actions.codec import Codec, PLAN_MODES, TextActionCodec
from rt2_ros.decoding import ConstraintError
from rt2_ros.decoding.guided import (
    action_grammar, action_token_budget, Constraint, GuidedLogitsProcessor,
    GuidedStoppingCriteria, llguidance_tokenizer,
)
from rt2_ros.policy.base import (
    decoded_to_result, Observation, Policy, PolicyConfig, PolicyError, PolicyInvalidAction,
    PolicyResult, PolicyTiming, PolicyUnavailable, validate_actions,
)
from rt2_ros.policy.prompts import PromptError, render_prompt, resolve_template
from rt2_ros.torch_device import resolve_device_name
import torch

ACTION_SPACE_FILE = 'action_space.yaml'
STATISTICS_FILE = 'dataset_statistics.json'
WEIGHT_PATTERNS = ('*.safetensors', '*.bin', '*.pt', '*.pth')
TRAINING_RECORD_FILE = 'training.json'  # what `rt2 train` writes beside its checkpoints
MAX_REGEX_CACHE = 16
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}

ImageLike = np.ndarray


def checkpoint_robot_plan(model_dir: Path) -> str:
    """
    Return the plan layout a checkpoint's robot answers were trained with (`robot_plan`).

    `rt2 train` records the recipe beside the weights; any other checkpoint says nothing,
    which means 'none' (a bare action).
    """
    try:
        record = json.loads((model_dir / TRAINING_RECORD_FILE).read_text(encoding='utf-8'))
        robot_plan = record['config'].get('robot_plan', 'none')
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 'none'
    return 'none' if robot_plan is None else str(robot_plan)


def checkpoint_prompt_template(model_dir: Path) -> str:
    """
    Return the prompt template a checkpoint's robot rows were trained with, or '' if unknown.

    A model trained to be told the gripper's state (`rt2_gripper`) must be asked that way;
    `rt2 train` records it beside the weights, other checkpoints leave the choice to the user.
    """
    try:
        record = json.loads((model_dir / TRAINING_RECORD_FILE).read_text(encoding='utf-8'))
        template = record['config'].get('prompt_template', '')
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ''
    return template if isinstance(template, str) else ''


def checkpoint_plan_mode(model_dir: Path) -> str:
    """
    Return the plan mode a checkpoint was trained to answer in: 'required' or 'none'.

    A model trained to write `Plan: ... Action: ...` must be decoded that way, or the
    constraint forces its action tokens where it would write its plan.
    """
    return 'none' if checkpoint_robot_plan(model_dir) == 'none' else 'required'


def _read_config(model_dir: Path) -> Dict[str, Any]:
    """Read the checkpoint's config.json, or raise PolicyUnavailable saying what is wrong."""
    if not model_dir.exists():
        raise PolicyUnavailable(f'model directory {model_dir} does not exist')
    if not model_dir.is_dir():
        raise PolicyUnavailable(f'model path {model_dir} is not a directory')
    config_file = model_dir / 'config.json'
    if not config_file.is_file():
        raise PolicyUnavailable(f'{model_dir} is not a transformers checkpoint (no config.json)')
    try:
        config = json.loads(config_file.read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:
        raise PolicyUnavailable(f'{config_file} is not valid JSON: {exc}') from None
    if not isinstance(config, dict):
        raise PolicyUnavailable(f'{config_file} is not a JSON object')
    if not any(any(model_dir.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise PolicyUnavailable(f'{model_dir} has no weight files (*.safetensors, *.bin)')
    return config


def pick_device(requested: str) -> Tuple[torch.device, torch.dtype]:
    """auto: CUDA + bf16 when available, else CPU + fp32. cuda without a GPU is an error."""
    try:
        choice = resolve_device_name(requested, torch.cuda.is_available())
    except ValueError as exc:
        raise PolicyUnavailable(str(exc)) from None
    if choice.startswith('cuda'):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device(choice), dtype
    return torch.device('cpu'), torch.float32


def _eos_ids(model: Any, tokenizer: Any) -> List[int]:
    ids = set()
    configured = getattr(getattr(model, 'generation_config', None), 'eos_token_id', None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if getattr(tokenizer, 'eos_token_id', None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    if not ids:
        raise PolicyUnavailable('the checkpoint defines no end-of-sequence token')
    return sorted(ids)


def check_image(image: Any) -> np.ndarray:
    """HxWx3 uint8 RGB, as Observation promises; anything else is a caller bug."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ValueError(f'image must be an HxWx3 uint8 RGB array, got shape {shape} {dtype}')
    return np.ascontiguousarray(image)


class LocalTransformersPolicy(Policy):
    """
    A transformers checkpoint directory as a Policy (config.model_path).

    config.extra keys: plan ('none' | 'optional' | 'required' chain-of-thought for text spaces;
    default: what the checkpoint was trained to write, see checkpoint_plan_mode),
    max_new_tokens (default: what the longest valid action needs, see action_token_budget),
    temperature (0 = greedy), seed, dtype (float32 | bfloat16 | float16),
    torch_threads (CPU threads for the whole process;
    0 = torch's default), warmup (default true: one decision on a blank image at load, so the
    robot's first real decision does not pay for lazy initialisation). Observation.state and
    extras are not used: RT-2-style models see only the image and the instruction.
    """

    name = 'local'
    WARMUP_SIZE = 224

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        extra = dict(config.extra or {})
        if not config.model_path:
            raise PolicyUnavailable('the local backend needs a model path (policy.model_path)')
        self.model_dir = Path(config.model_path).expanduser()
        model_config = _read_config(self.model_dir)
        self.model_type = str(model_config.get('model_type', ''))
        self.trust_remote_code = 'auto_map' in model_config
        space = self._load_space(config)
        super().__init__(space)
        self.codec: Codec = make_codec(space, self._load_unnormalizer(space, config))
        self.device, self.dtype = pick_device(config.device)
        if extra.get('dtype'):
            if extra['dtype'] not in DTYPES:
                raise PolicyUnavailable(f'dtype must be one of {", ".join(DTYPES)}')
            self.dtype = DTYPES[extra['dtype']]
        self.plan = str(extra.get('plan', checkpoint_plan_mode(self.model_dir)))
        if self.plan not in PLAN_MODES:
            raise PolicyUnavailable(f'plan must be one of {", ".join(PLAN_MODES)}')
        self.temperature = _option(extra, 'temperature', 0.0, float)
        threads = _option(extra, 'torch_threads', 0, int)
        if threads:
            torch.set_num_threads(threads)
        default_template = 'openvla' if space.tokenization == 'vocab_ids' else 'rt2'
        try:
            self.prompt_template = resolve_template(
                config.prompt_template or checkpoint_prompt_template(self.model_dir),
                default_template)
        except PromptError as exc:
            raise PolicyUnavailable(str(exc)) from None
        self._lock = threading.Lock()
        load_start = time.perf_counter()
        self.processor, self.model = self._load_model(model_config)
        self.tokenizer = getattr(self.processor, 'tokenizer', None)
        if self.tokenizer is None:
            raise PolicyUnavailable(f'{self.model_dir}: the processor has no tokenizer')
        self.tokenizer.padding_side = 'left'
        self.width = self._logits_width()
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_ids[0]
        self.image_token = getattr(self.processor, 'image_token', None)
        self._special_texts = sorted(
            {t for t in list(getattr(self.tokenizer, 'all_special_tokens', []) or []) +
             [self.image_token] if t}, key=len, reverse=True)
        text_config = self.model.config.get_text_config()
        self.max_positions = getattr(text_config, 'max_position_embeddings', None)
        self._regex_constraints: 'OrderedDict[str, Constraint]' = OrderedDict()
        requested = extra.get('max_new_tokens')
        requested = None if requested is None else _option(extra, 'max_new_tokens', 0, int)
        try:
            self._lltokenizer = llguidance_tokenizer(self.tokenizer, self.width, self.eos_ids)
            self._check_action_ids()
            self.action_constraint = Constraint(self._lltokenizer,
                                                action_grammar(self.codec, self.plan))
        except ConstraintError as exc:
            raise PolicyUnavailable(f'{self.model_dir}: cannot constrain this model to '
                                    f'{space.name} actions: {exc}') from None
        self.max_new_tokens = self._budget(requested)
        self._seed = _option(extra, 'seed', 0, int)
        self._rng_state: Optional[Tuple[Any, Any]] = None
        self._closed = False
        if extra.get('warmup', True):
            blank = np.full((self.WARMUP_SIZE, self.WARMUP_SIZE, 3), 128, dtype=np.uint8)
            self.infer(Observation(image=blank, instruction='warm up', gripper=1.0))
        self.load_s = time.perf_counter() - load_start

    # -- loading ------------------------------------------------------------------------------

    def _load_space(self, config: PolicyConfig) -> ActionSpace:
        own = self.model_dir / ACTION_SPACE_FILE
        spec: Union[str, Path] = own if own.is_file() else (config.action_space or 'rt2')
        self.action_space_source = str(spec)
        try:
            return load_action_space(spec)
        except ActionSpaceError as exc:
            raise PolicyUnavailable(f'action space: {exc}') from None

    def _load_unnormalizer(self, space: ActionSpace, config: PolicyConfig) -> Any:
        stats_file = self.model_dir / STATISTICS_FILE
        if not stats_file.is_file():
            if config.unnorm_key:
                raise PolicyUnavailable(f'unnorm_key {config.unnorm_key!r} given but '
                                        f'{self.model_dir} has no {STATISTICS_FILE}')
            return None
        try:
            stats = load_dataset_statistics(stats_file)
            return unnormalizer_from_statistics(stats, config.unnorm_key or None, space.size)
        except StatisticsError as exc:
            raise PolicyUnavailable(f'{STATISTICS_FILE}: {exc}') from None

    def _load_model(self, model_config: Dict[str, Any]) -> Tuple[Any, Any]:
        import transformers
        from transformers import AutoProcessor
        from transformers.utils import logging as hf_logging

        import rt2_ros.models.rt2_vla  # noqa: F401 - registers model type rt2_vla

        hf_logging.disable_progress_bar()
        path = str(self.model_dir)
        common = {'local_files_only': True, 'trust_remote_code': self.trust_remote_code}
        try:
            processor = AutoProcessor.from_pretrained(path, **common)
        except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable"
            raise PolicyUnavailable(f'cannot load the processor from {path}: '
                                    f'{_one_line(exc)}') from None
        auto_map = model_config.get('auto_map') or {}
        try:
            if self.trust_remote_code and any(k in auto_map for k in (
                    'AutoModelForImageTextToText', 'AutoModelForVision2Seq')):
                from transformers.dynamic_module_utils import get_class_from_dynamic_module
                reference = auto_map.get('AutoModelForImageTextToText') or \
                    auto_map['AutoModelForVision2Seq']
                model_class = get_class_from_dynamic_module(reference, path)
                model = model_class.from_pretrained(path, dtype=self.dtype, **common)
            else:
                model = self._load_with_auto_classes(transformers, path, common)
        except PolicyUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            raise PolicyUnavailable(f'cannot load the model from {path}: '
                                    f'{_one_line(exc)}') from None
        model.to(self.device)
        model.eval()
        return processor, model

    def _load_with_auto_classes(self, transformers: Any, path: str,
                                common: Dict[str, Any]) -> Any:
        names = ('AutoModelForImageTextToText', 'AutoModelForVision2Seq')
        classes = [getattr(transformers, n) for n in names if hasattr(transformers, n)]
        errors = []
        for auto_class in classes:
            try:
                return auto_class.from_pretrained(path, dtype=self.dtype, **common)
            except ValueError as exc:  # "Unrecognized configuration class" -> try the next
                errors.append(_one_line(exc))
        raise PolicyUnavailable(f'{path}: no image-text-to-text model class fits this '
                                f'checkpoint ({"; ".join(errors)})')

    def _logits_width(self) -> int:
        head = self.model.get_output_embeddings() if hasattr(
            self.model, 'get_output_embeddings') else None
        if head is not None and getattr(head, 'weight', None) is not None:
            return int(head.weight.shape[0])
        return int(self.model.config.get_text_config().vocab_size)

    def _check_action_ids(self) -> None:
        if isinstance(self.codec, TextActionCodec):
            return
        if self.plan != 'none':
            raise ConstraintError('plan needs a text action space')
        block = self.codec.block_ids()
        if int(block.max()) >= self.width or int(block.min()) < 0:
            raise ConstraintError(
                f"action ids {self.codec.describe_block()} do not fit the model's {self.width} "
                'logits (wrong vocab_size in the action space?)')

    def _budget(self, requested: Optional[int]) -> int:
        """
        Return max_new_tokens: by default what the longest valid action needs (always ends).

        A smaller budget of the user's is honoured, as a server honours max_tokens: an output
        it cuts short fails the strict decode and is reported, never guessed.
        """
        if requested is None:
            return action_token_budget(self.codec, self.plan)
        if requested < self.space.size:
            raise PolicyUnavailable(f'max_new_tokens {requested} is below the '
                                    f'{self.space.size} tokens an action needs')
        return int(requested)

    # -- public API ---------------------------------------------------------------------------

    def info(self) -> Dict[str, Any]:
        """Describe what is loaded, for logs and server metadata."""
        return {
            'backend': self.name, 'model_path': str(self.model_dir),
            'model_name': self.config.model_name or self.model_dir.name,
            'model_type': self.model_type, 'model_class': type(self.model).__name__,
            'device': str(self.device), 'dtype': str(self.dtype).replace('torch.', ''),
            'action_space': self.space.name, 'action_space_source': self.action_space_source,
            'action_dims': list(self.space.names),
            'tokenization': self.space.tokenization, 'prompt_template': self.prompt_template,
            'plan': self.plan, 'max_new_tokens': self.max_new_tokens,
            'unnorm_key': getattr(self.codec.unnormalizer, 'key', None),
            'decoder': 'generate + llguidance',
            'trust_remote_code': self.trust_remote_code,
        }

    def prompt(self, instruction: str, gripper: Optional[float] = None) -> str:
        """Return the templated prompt for an instruction (without the image placeholder)."""
        return render_prompt(self.prompt_template, self._plain_text(instruction), gripper)

    def _plain_text(self, text: str) -> str:
        """
        Remove special-token strings from user text.

        An instruction is data, not markup: a literal "<image>" or "<eos>" in it would otherwise
        become a control token of the model (an extra image slot, an early end of prompt).
        """
        for special in self._special_texts:
            text = text.replace(special, ' ')
        return text

    def infer(self, observation: Observation) -> PolicyResult:
        """One decision for one observation."""
        return self.infer_batch([observation])[0]

    def infer_batch(self, observations: Sequence[Observation],
                    return_exceptions: bool = False) -> List[Any]:
        """
        Decisions for several observations in one batched generation.

        With return_exceptions, an observation whose output fails validation gets its
        PolicyError in the list instead of failing the whole batch (for servers).
        """
        start = time.perf_counter()
        if not observations:
            return []
        try:
            prompts = [self.prompt(o.instruction, o.gripper) for o in observations]
        except PromptError as exc:
            raise ValueError(str(exc)) from None
        images = [check_image(o.image) for o in observations]
        constraints = [self.action_constraint] * len(observations)
        tokens, encode_s, inference_s = self._run(images, prompts, constraints,
                                                  self.max_new_tokens, self.temperature)
        results: List[Any] = []
        for row_tokens in tokens:
            timing = PolicyTiming(request_s=time.perf_counter() - start,
                                  inference_s=inference_s, encode_s=encode_s)
            try:
                results.append(self._to_result(row_tokens, timing))
            except PolicyError as exc:
                if not return_exceptions:
                    raise
                results.append(exc)
        return results

    def generate_text(self, images: Sequence[ImageLike], prompts: Sequence[str],
                      regex: Optional[str] = None, max_new_tokens: int = 64,
                      temperature: float = 0.0) -> List[str]:
        """
        Free or regex-constrained text for (image, prompt) pairs, batched.

        Prompts are plain text used as given (no action template; special-token strings are
        removed and the image placeholder is added here). With regex, each output fully matches
        it (ConstraintError, a ValueError, if the regex is unsupported or cannot be met within
        max_new_tokens); the text returned is exactly the accepted characters.
        """
        if len(images) != len(prompts):
            raise ValueError(f'{len(images)} images for {len(prompts)} prompts')
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError('max_new_tokens must be at least 1')
        if temperature < 0 or not math.isfinite(temperature):
            raise ValueError('temperature must be a finite number >= 0')
        checked = [check_image(image) for image in images]
        constraint = self._regex_constraint(regex) if regex is not None else None
        plain = [self._plain_text(str(p)) for p in prompts]
        tokens, _, _ = self._run(checked, plain, [constraint] * len(prompts),
                                 int(max_new_tokens), float(temperature), whole=True)
        if constraint is None:
            return [self.tokenizer.decode(row, skip_special_tokens=True,
                                          clean_up_tokenization_spaces=False) for row in tokens]
        return [self._text_of(row) for row in tokens]

    def _text_of(self, tokens: List[int]) -> str:
        """Return exactly the characters tokens write (what the constraint judged)."""
        return self._lltokenizer.decode_bytes(list(tokens)).decode('utf-8', errors='replace')

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.model = None
            self._regex_constraints.clear()
            if self.device.type == 'cuda':
                torch.cuda.empty_cache()

    # -- decoding -----------------------------------------------------------------------------

    def _regex_constraint(self, pattern: str) -> Constraint:
        """Return the compiled constraint of a regex (the last MAX_REGEX_CACHE are kept)."""
        import llguidance
        with self._lock:
            constraint = self._regex_constraints.get(pattern)
            if constraint is not None:
                self._regex_constraints.move_to_end(pattern)
                return constraint
        try:
            constraint = Constraint(self._lltokenizer,
                                    llguidance.LLMatcher.grammar_from_regex(pattern))
            first = constraint.matcher()
            first.compute_bitmask()  # errors that show only once the lexer starts
            if first.is_error():
                raise ConstraintError(first.get_error())
        except ConstraintError as exc:
            raise ConstraintError(_one_line(exc)) from None
        with self._lock:
            self._regex_constraints[pattern] = constraint
            while len(self._regex_constraints) > MAX_REGEX_CACHE:
                self._regex_constraints.popitem(last=False)
        return constraint

    def _prepare(self, images: List[np.ndarray], prompts: List[str],
                 max_new_tokens: int) -> Dict[str, Any]:
        if self.image_token:
            prompts = [p if self.image_token in p else self.image_token + p for p in prompts]
        try:
            batch = self.processor(images=images, text=prompts, return_tensors='pt',
                                   padding='longest')
        except Exception as exc:  # noqa: BLE001 - processor failures are input problems
            raise ValueError(f'the processor rejected the input: {_one_line(exc)}') from None
        inputs = {k: v for k, v in batch.items() if k != 'labels' and hasattr(v, 'to')}
        ids = inputs['input_ids']
        if int(ids.max()) >= self.width or int(ids.min()) < 0:
            raise ValueError("the prompt has token ids outside the model's vocabulary")
        if self.max_positions and ids.shape[1] + max_new_tokens > self.max_positions:
            raise ValueError(f'prompt ({ids.shape[1]} tokens) plus {max_new_tokens} new tokens '
                             f'exceed the {self.max_positions} positions of the model')
        for key, value in inputs.items():
            if torch.is_floating_point(value):
                inputs[key] = value.to(self.device, dtype=self.dtype)
            else:
                inputs[key] = value.to(self.device)
        return inputs

    def _run(self, images: List[np.ndarray], prompts: List[str],
             constraints: List[Optional[Constraint]], max_new_tokens: int,
             temperature: float, whole: bool = False) -> Tuple[List[List[int]], float, float]:
        """Generate for a batch; with whole, an output the budget cut short is an error."""
        with self._lock:
            if self._closed:
                raise PolicyUnavailable('the local policy was closed')
            encode_start = time.perf_counter()
            inputs = self._prepare(images, prompts, max_new_tokens)
            generate_start = time.perf_counter()
            try:
                with torch.inference_mode():
                    processor = self._generate(inputs, constraints, max_new_tokens,
                                               temperature)
            except ConstraintError as exc:
                if whole:  # a caller's regex that the library gave up on (size limits)
                    raise ConstraintError(f'unusable regex: {_one_line(exc)}') from None
                raise PolicyInvalidAction(f'constrained decoding failed: {exc}') from None
            except RuntimeError as exc:  # e.g. NaN probabilities when sampling
                raise PolicyInvalidAction(f'generation failed: {_one_line(exc)}') from None
            done = time.perf_counter()
        if whole and not all(processor.complete(row) for row in range(len(constraints))):
            raise ConstraintError(f'max_new_tokens {max_new_tokens} is too small to complete '
                                  'the constrained output')
        return processor.tokens, generate_start - encode_start, done - generate_start

    def _generate(self, inputs: Dict[str, Any], constraints: List[Optional[Constraint]],
                  max_new_tokens: int, temperature: float) -> GuidedLogitsProcessor:
        """Run one `model.generate`, greedy or sampled, with each row's constraint."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        matchers = [c.matcher() if c is not None else None for c in constraints]
        processor = GuidedLogitsProcessor(matchers, self.width, self.eos_ids)
        sampling = {'do_sample': True, 'temperature': temperature, 'top_k': 0, 'top_p': 1.0} \
            if temperature > 0 else {'do_sample': False}
        with self._sampling_rng(temperature > 0):
            output = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens,
                logits_processor=LogitsProcessorList([processor]),
                stopping_criteria=StoppingCriteriaList([GuidedStoppingCriteria(processor)]),
                pad_token_id=self.pad_id, eos_token_id=list(self.eos_ids), **sampling)
        processor.sync(output)
        return processor

    @contextmanager
    def _sampling_rng(self, sampling: bool) -> Iterator[None]:
        """
        Sample from this policy's own seeded random stream (policy.extra seed).

        generate draws from torch's global generator; it is swapped in and out here so that a
        policy's samples are reproducible and other users of torch's generator are untouched.
        """
        if not sampling:
            yield
            return
        cuda = [self.device] if self.device.type == 'cuda' else []
        with torch.random.fork_rng(devices=cuda):
            if self._rng_state is None:
                torch.manual_seed(self._seed)
            else:
                torch.set_rng_state(self._rng_state[0])
                if cuda:
                    torch.cuda.set_rng_state(self._rng_state[1], self.device)
            try:
                yield
            finally:
                self._rng_state = (torch.get_rng_state(),
                                   torch.cuda.get_rng_state(self.device) if cuda else None)

    def _to_result(self, tokens: List[int], timing: PolicyTiming) -> PolicyResult:
        raw: Any
        try:
            if isinstance(self.codec, TextActionCodec):
                raw = self._text_of(tokens)
                decoded = self.codec.decode(raw)
            else:
                raw = [int(t) for t in tokens]
                decoded = self.codec.decode(raw)
        except ActionDecodeError as exc:
            raise PolicyInvalidAction(f'model output is not a valid {self.space.name} action '
                                      f'({exc.kind}): {exc}') from None
        result = decoded_to_result([decoded], raw, timing)
        validate_actions(self.space, result.actions, self.codec.bounds())
        return result


def _option(extra: Dict[str, Any], key: str, default: Any, cast: Any) -> Any:
    """Read a non-negative finite number from policy.extra; PolicyUnavailable names the key."""
    raw = extra.get(key, default)
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise PolicyUnavailable(f'policy.extra {key} must be a number, got {raw!r}') from None
    if isinstance(raw, bool) or not math.isfinite(value) or value < 0:
        raise PolicyUnavailable(f'policy.extra {key} must be a finite number >= 0, got {raw!r}')
    return value


def _one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split())
    return (text[:300] + '...') if len(text) > 300 else (text or type(exc).__name__)
