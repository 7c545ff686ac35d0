"""
Training the demo VLA: data, batches, reproducibility from a seed, resuming, ordinal smoothing.

A tiny recipe (a few episodes, a 1-layer model, a handful of steps) runs the real trainer end to
end in seconds; the properties checked are the ones a user relies on: the same seed gives the
same weights, an interrupted run resumes to exactly the same result, and training batches are
token for token what the checkpoint's processor produces at inference.
"""
import json
import re
import shutil

import numpy as np
import pytest
from rt2_ros.models.tiny_vla import SPACE_MARK
from rt2_ros.sim.rollout import DEFAULT_DECISION_RATE_HZ
from rt2_ros.training.batches import make_batch
from rt2_ros.training.config import DaggerRound, TrainConfig, TrainConfigError, VqaStage
from rt2_ros.training.model import ModelSize
from rt2_ros.training.robot_data import robot_examples
from rt2_ros.training.trainer import OrdinalSmoothing, Trainer, TrainingError
from rt2_ros.training.vqa import QuestionMaker, sample_scene, vqa_examples
import torch
import yaml

TINY = ModelSize(image_size=48, patch_size=12, vision_hidden=32, vision_layers=1,
                 vision_heads=2, hidden=48, layers=1, heads=2, kv_heads=1, mlp_ratio=2)


def tiny_config(**changes) -> TrainConfig:
    values = {'robot_episodes': 3, 'vqa_examples': 24, 'steps': 6, 'batch_size': 4,
              'warmup_steps': 2, 'checkpoint_every': 3, 'threads': 1, 'workers': 1,
              'model': TINY, 'seed': 3}
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    """Generate the tiny recipe's data once; runs copy it (the trainer caches data by name)."""
    out = tmp_path_factory.mktemp('train_data')
    trainer = Trainer(tiny_config(), out, log=lambda _: None)
    trainer.prepare()
    return out / 'data'


def new_run(tmp_path, data_dir, name, remake=(), device=None, **changes) -> Trainer:
    """Start a run on copies of the shared data; `remake` names data sets made afresh."""
    out = tmp_path / name
    shutil.copytree(data_dir, out / 'data')
    for data_set in remake:
        (out / 'data' / f'{data_set}.npz').unlink()
    trainer = Trainer(tiny_config(**changes), out, log=lambda _: None, device=device)
    trainer.load_state()
    trainer.prepare()
    return trainer


def weights(trainer: Trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_same_seed_same_losses_and_weights_and_resume_is_exact(tmp_path, data_dir):
    straight = new_run(tmp_path, data_dir, 'a')
    straight.run()
    again = new_run(tmp_path, data_dir, 'b')
    again.run()
    assert [h['loss'] for h in straight.state.history] == \
        [h['loss'] for h in again.state.history]
    for key, value in weights(straight).items():
        assert torch.equal(value, weights(again)[key]), key

    # Interrupted after a checkpoint, then a fresh process-like Trainer resumes from disk.
    first = new_run(tmp_path, data_dir, 'c')
    first.run(until=3)
    resumed = Trainer(tiny_config(), tmp_path / 'c', log=lambda _: None)
    assert resumed.load_state() and resumed.state.step == 3
    resumed.prepare()
    resumed.run()
    final = weights(straight)
    for key, value in weights(resumed).items():
        assert torch.equal(value, final[key]), key

    other = new_run(tmp_path, data_dir, 'd', seed=4)
    other.run(until=1)
    assert other.batch_picks(0) != straight.batch_picks(0)


def test_resume_refuses_another_recipe(tmp_path, data_dir):
    run = new_run(tmp_path, data_dir, 'a')
    run.run(until=3)
    from rt2_ros.training.trainer import TrainingError
    with pytest.raises(TrainingError, match='another recipe'):
        Trainer(tiny_config(learning_rate=5e-4), tmp_path / 'a').load_state()


def staged(**changes):
    """Two VQA stages (one-block captions, then pointing on 2-3 blocks) before co-fine-tuning."""
    stages = [VqaStage(steps=2, blocks=[1, 1], examples=8, questions={'caption': 1.0}),
              VqaStage(steps=1, blocks=[2, 3], examples=8)]
    return dict({'stages': stages}, **changes)


def test_vqa_stages_open_the_run_and_resume_exactly_across_them(tmp_path, data_dir):
    run = new_run(tmp_path, data_dir, 'a', **staged())
    first, second = run.stage_streams
    streams = [{s for s, _ in run.batch_picks(step)} for step in range(6)]
    assert streams[:3] == [{first}, {first}, {second}]
    assert all(s == {0, 1} for s in streams[3:]), streams  # then robot and VQA, mixed
    captions = run.sets[first].examples
    assert set(captions.tags) == {'caption'}
    assert all(',' not in a and ' and ' not in a for a in captions.answers), captions.answers
    assert set(run.sets[second].examples.tags) <= {'point', 'point_gripper'}
    run.run()

    part = new_run(tmp_path, data_dir, 'b', **staged())
    part.run(until=2)  # no checkpoint yet: resuming restarts from step 0 (checkpoint_every 3)
    part.run(until=3)
    resumed = Trainer(tiny_config(**staged()), tmp_path / 'b', log=lambda _: None)
    assert resumed.load_state() and resumed.state.step == 3
    resumed.prepare()
    resumed.run()
    final = weights(run)
    for key, value in weights(resumed).items():
        assert torch.equal(value, final[key]), key

    out = run.export(tmp_path / 'model')
    report = json.loads((out / 'training.json').read_text(),
                        parse_constant=lambda c: pytest.fail(f'{c} in training.json'))
    assert [s['blocks'] for s in report['config']['stages']] == [[1, 1], [2, 3]]
    assert TrainConfig.load(out / 'training.json') == run.config
    shares = json.loads((out / 'training_statistics.json').read_text())
    assert shares['stage1']['by_type'] == {'caption': 8} and 'stage2' in shares


def test_robot_only_and_co_fine_tuned_runs_share_the_model_their_stages_make(tmp_path, data_dir):
    co = new_run(tmp_path, data_dir, 'co', **staged())
    alone = new_run(tmp_path, data_dir, 'alone', **staged(robot_fraction=1.0))
    assert alone.stream_names() == ['robot', 'stage1', 'stage2']
    assert co.stream_names() == ['robot', 'vqa', 'stage1', 'stage2']
    assert_same_until_then_apart(co, alone, 3)


def assert_same_until_then_apart(a: Trainer, b: Trainer, step: int) -> None:
    """Train both to `step` (equal weights), then one step more (different weights)."""
    a.run(until=step)
    b.run(until=step)
    shared = weights(a)
    assert all(torch.equal(v, shared[k]) for k, v in weights(b).items())
    a.run(until=step + 1)
    b.run(until=step + 1)
    assert not all(torch.equal(v, weights(a)[k]) for k, v in weights(b).items())


def test_a_stage_appended_to_a_recipe_leaves_the_steps_before_it_unchanged(tmp_path, data_dir):
    # A run may continue another's state where its stages end: valid only if
    # adding a stage (and another VQA mix) to a recipe of the same length changes nothing before.
    base = new_run(tmp_path, data_dir, 'base', **staged())
    longer = staged(vqa_questions={'reach': 1.0})
    longer['stages'] = longer['stages'] + [VqaStage(steps=1, blocks=[2, 3], examples=8,
                                                    questions={'reach': 1.0})]
    more = new_run(tmp_path, data_dir, 'more', remake=('vqa',), **longer)
    assert_same_until_then_apart(base, more, 3)


def test_planned_robot_answers_leave_the_stages_unchanged(tmp_path, data_dir):
    # A planned run may continue a plain run's state where the stages end: valid only if
    # writing plans in the robot answers changes nothing before the robot data is used.
    base = new_run(tmp_path, data_dir, 'base', **staged())
    planned = new_run(tmp_path, data_dir, 'planned', remake=('robot',), robot_plan='points',
                      **staged())
    assert_same_until_then_apart(base, planned, 3)


def test_the_state_where_the_stages_end_is_saved_for_ablations(tmp_path, data_dir):
    run = new_run(tmp_path, data_dir, 'a', **staged(checkpoint_every=100))
    saved = []
    save = run.save_state
    run.save_state = lambda: (saved.append(run.state.step), save())
    run.run()
    assert saved == [3, 6]  # the stages end at step 3; the run at 6


def test_train_command_line_sets_and_clears_the_stages(tmp_path):
    from rt2_ros.cli.cmd_train import build_config
    from rt2_ros.cli.main import build_parser

    recipe = tmp_path / 'recipe.json'
    recipe.write_text(json.dumps(tiny_config(**staged()).to_dict()))

    def config(*extra):
        args = build_parser().parse_args(['train', '--out', str(tmp_path / 'run'),
                                          '--config', str(recipe), *extra])
        return build_config(args)

    assert config().stages == staged()['stages']  # the recipe file's stages, questions and all
    assert [(s.blocks, s.steps) for s in config('--stage', '1:2', '--stage', '2-5:3').stages] \
        == [([1, 1], 2), ([2, 5], 3)]
    assert config('--no-stages').stages == []
    for bad in ('2-5', '1:0', 'one:3', '3-2:1'):
        with pytest.raises(SystemExit):
            config('--stage', bad)


def test_vqa_stage_recipe_errors_come_before_any_data_is_made(tmp_path):
    with pytest.raises(TrainConfigError, match='leave steps'):
        tiny_config(**staged(steps=3)).validate()
    with pytest.raises(TrainConfigError, match='blocks'):
        tiny_config(stages=[VqaStage(steps=1, blocks=[3, 2])]).validate()
    with pytest.raises(TrainConfigError, match='positive weight'):
        tiny_config(stages=[VqaStage(steps=1, questions={'point': 0.0})]).validate()
    with pytest.raises(TrainConfigError, match='after the VQA stages'):
        tiny_config(**staged(dagger=[DaggerRound(at_step=3, episodes=2)])).validate()
    trainer = Trainer(tiny_config(stages=[VqaStage(steps=1, questions={'pointing': 1.0})]),
                      tmp_path, log=lambda _: None)
    with pytest.raises(TrainingError, match='unknown question types: pointing; known: caption'):
        trainer.prepare()
    assert not (tmp_path / 'data').exists()


def test_batches_are_what_the_processor_gives_at_inference(tmp_path, data_dir):
    trainer = new_run(tmp_path, data_dir, 'a')
    for stream, index in [(0, 0), (1, 5)]:
        data = trainer.sets[stream]
        batch = make_batch(trainer.sets, [(stream, index)])
        image = data.examples.images[data.image_index[index]]
        text = ['<image>' + data.examples.prompts[index]]
        expected = trainer.processor(images=[image], text=text,
                                     suffix=[data.examples.answers[index]], return_tensors='pt')
        assert torch.equal(batch['input_ids'], expected['input_ids'])
        assert torch.equal(batch['token_type_ids'], expected['token_type_ids'])
        assert torch.allclose(batch['pixel_values'], expected['pixel_values'])
        labels = expected['labels'][0]
        answer_positions = (labels != -100).nonzero().flatten()
        assert torch.equal(batch['labels'][0], labels[answer_positions])
        assert torch.equal(batch['label_positions'][0], answer_positions - 1)


def test_export_loads_in_the_local_backend_and_acts(tmp_path, data_dir):
    from rt2_ros.policy import Observation, PolicyConfig
    from rt2_ros.policy.local import LocalTransformersPolicy

    trainer = new_run(tmp_path, data_dir, 'a')
    trainer.run(until=2)
    out = trainer.export(tmp_path / 'model')
    for name in ('model.safetensors', 'config.json', 'tokenizer.json', 'action_space.yaml',
                 'training.json', 'training_statistics.json'):
        assert (out / name).is_file(), name
    # the controller spreads each action over the period the demos were recorded at
    space = yaml.safe_load((out / 'action_space.yaml').read_text())
    assert space['nominal_rate_hz'] == DEFAULT_DECISION_RATE_HZ == 5.0
    policy = LocalTransformersPolicy(PolicyConfig(backend='local', model_path=str(out)))
    result = policy.infer(Observation(image=np.zeros((224, 224, 3), np.uint8),
                                      instruction='pick up the red cube'))
    assert result.actions.shape == (1, 8)


def test_a_checkpoint_trained_to_plan_is_decoded_with_its_plan(tmp_path, data_dir):
    from rt2_ros.policy import Observation, PolicyConfig
    from rt2_ros.policy.local import checkpoint_robot_plan, LocalTransformersPolicy

    trainer = new_run(tmp_path, data_dir, 'a', remake=('robot',), robot_plan='points')
    assert trainer.sets[0].examples.answers[0].startswith('Plan: ')
    trainer.run(until=2)
    out = trainer.export(tmp_path / 'model')
    stats = json.loads((out / 'training_statistics.json').read_text())
    assert 0 < stats['robot']['action']['terminate_fraction'] < 1  # read past the plans
    observation = Observation(image=np.zeros((224, 224, 3), np.uint8),
                              instruction='pick up the red cube')
    policy = LocalTransformersPolicy(PolicyConfig(backend='local', model_path=str(out)))
    assert policy.plan == 'required'
    assert checkpoint_robot_plan(out) == 'points' and checkpoint_robot_plan(tmp_path) == 'none'
    result = policy.infer(observation)
    assert result.plan is not None and result.actions.shape == (1, 8)
    # The user's setting still wins over the checkpoint's.
    plain = LocalTransformersPolicy(PolicyConfig(backend='local', model_path=str(out),
                                                 extra={'plan': 'none'}))
    assert plain.plan == 'none' and plain.infer(observation).plan is None


def test_replanning_cached_robot_data_gives_what_generating_it_with_the_plan_gives():
    from rt2_ros.training.robot_data import replanned

    plain = robot_examples([0, 1], image_size=32, grounding=True)
    planned = robot_examples([0, 1], image_size=32, plan='ground_points', grounding=True)
    again = replanned(plain, [0, 1], 'ground_points')
    assert 'vqa' in plain.kinds                    # the pointing rows between the actions stay
    assert again.answers == planned.answers and again.prompts == plain.prompts
    assert np.array_equal(again.images, plain.images)
    assert replanned(planned, [0, 1], 'none').answers == plain.answers   # and back
    with pytest.raises(ValueError, match='not the robot data'):
        replanned(plain, [1, 0], 'points')                              # other episodes


def test_dagger_labels_the_visited_states_with_the_recipes_plan(tmp_path, data_dir):
    # A planned recipe's DAgger rows must be written as its robot rows are, plan first, or the
    # model would be taught two answer formats for one prompt.
    from rt2_ros.sim.expert import ExpertNoise
    from rt2_ros.sim.rollout import expert_episode
    from rt2_ros.sim.tasks import make_episode
    from rt2_ros.training.examples import ExampleSet
    from rt2_ros.training.robot_data import bins_text, planned_answer

    trainer = new_run(tmp_path, data_dir, 'a', remake=('robot',),
                      robot_plan='ground_points_gripper',
                      dagger=[DaggerRound(at_step=2, episodes=2)])
    trainer.run(until=3)
    assert trainer.state.dagger_done == 1
    visited = ExampleSet.load(str(trainer._data_path('dagger0')))
    pattern = r'Plan: (\d+ ){6}(open|closed)\. Action: \d+( \d+){7}'
    assert len(visited) >= 2 and all(re.fullmatch(pattern, a) for a in visited.answers)
    # The first rollout starts where the expert's own episode does: the same first label.
    seed = trainer.config.train_seed_ranges()[1][0]
    step = expert_episode(make_episode('train', seed), render=False, points=True,
                          noise=ExpertNoise.none()).steps[0]
    assert visited.answers[0] == planned_answer(step.points, bins_text(step.intended_bins),
                                                'ground_points_gripper', float(step.ee[4]))


def test_the_gripper_plan_says_open_until_the_fingers_shut_on_the_block():
    # Above the block the expert closes and holds, then lifts: the plan must tell those two
    # states apart, so its word follows the fingers, not the command.
    from rt2_ros.sim.rollout import expert_episode
    from rt2_ros.sim.tasks import make_episode
    from rt2_ros.training.robot_data import bins_text, planned_answer

    demo = expert_episode(make_episode('train_one_block', 3, family='pick'), render=False,
                          points=True)
    assert demo.success
    words = [planned_answer(step.points, bins_text(step.intended_bins), 'ground_points_gripper',
                            float(step.ee[4])).split('. Action: ')[0].rsplit(' ', 1)[1]
             for step in demo.steps]
    close = next(k for k, step in enumerate(demo.steps) if step.intended_bins[7] < 128)
    assert words[:close + 1] == ['open'] * (close + 1)
    assert words[-1] == 'closed'
    with pytest.raises(ValueError, match='opening'):
        planned_answer(demo.steps[0].points, '1 2 3 4 5 6 7 8', 'ground_points_gripper')


def test_the_gripper_prompt_states_each_frames_opening_as_the_controller_would():
    # Recipe option prompt_template 'rt2_gripper': the robot rows are asked with the state the
    # controller reads from joint_states at run time, frame by frame.
    from rt2_ros.policy.prompts import build_prompt, TEMPLATES
    from rt2_ros.training.config import TrainConfig, TrainConfigError

    told = robot_examples([3], image_size=32, split='train_one_block', families=['pick'],
                          template='rt2_gripper')
    plain = robot_examples([3], image_size=32, split='train_one_block', families=['pick'])
    assert told.answers == plain.answers and np.array_equal(told.images, plain.images)
    words = [prompt.split('. what action')[0].rsplit(' ', 1)[1] for prompt in told.prompts]
    assert words[0] == 'open' and words[-1] == 'closed'   # picked up: the fingers shut on it
    flips = sum(a != b for a, b in zip(words, words[1:]))
    assert flips == 1, words
    instruction = plain.prompts[0].split('take to ')[1][:-len('? A:')]
    assert told.prompts[0] == build_prompt('rt2_gripper', instruction, gripper=1.0)
    assert TrainConfig(prompt_template='rt2_gripper').prompt_template in TEMPLATES
    with pytest.raises(TrainConfigError, match='prompt_template'):
        TrainConfig(prompt_template='{gripper} only').validate()


def test_robot_data_labels_the_noise_free_action():
    examples = robot_examples([0], image_size=32)
    assert len(examples) > 3 and examples.images.shape[1:] == (32, 32, 3)
    assert all(p.startswith('Q: what action should the robot take to ') for p in examples.prompts)
    assert examples.answers[-1].startswith('0 ')  # the expert terminates at the end
    executed = robot_examples([0], image_size=32, label='executed')
    # Same states (the execution noise is the same), different labels where noise was added.
    assert np.array_equal(examples.images, executed.images)
    assert examples.answers != executed.answers


def test_planned_robot_answers_write_image_points_then_the_same_action():
    from rt2_ros.actions import load_action_space, make_codec

    plain = robot_examples([0], image_size=32)
    planned = robot_examples([0], image_size=32, plan='points')
    assert np.array_equal(plain.images, planned.images) and plain.prompts == planned.prompts
    codec = make_codec(load_action_space('rt2'))
    for action, answer in zip(plain.answers, planned.answers):
        match = re.fullmatch(r'Plan: (\d+) (\d+) (\d+) (\d+)\. Action: ([0-9 ]+)', answer)
        assert match and match.group(5) == action, answer
        assert all(0 <= int(v) <= 255 for v in match.groups()[:4])
        decoded = codec.decode(answer)  # the codec reads it as a plan and an action
        assert decoded.plan == ' '.join(match.groups()[:4])
        assert np.array_equal(decoded.bins, codec.decode(action).bins)
    # The target layout writes the named block's point first, then the same two points.
    targeted = robot_examples([0], image_size=32, plan='target_points')
    for planned_text, answer in zip(planned.answers, targeted.answers):
        match = re.fullmatch(r'Plan: (\d+) (\d+) (\d+ \d+ \d+ \d+\. Action: [0-9 ]+)', answer)
        assert match and planned_text == f'Plan: {match.group(3)}', answer
    # The table layout keeps the block's point and the action, and drops the other two points
    # onto the table: nearer the camera, so lower in the image (larger rows).
    grounded = robot_examples([0], image_size=32, plan='ground_points')
    for target_text, answer in zip(targeted.answers, grounded.answers):
        air = [int(v) for v in re.findall(r'\d+', target_text)]
        table = [int(v) for v in re.findall(r'\d+', answer)]
        assert table[:2] == air[:2] and table[6:] == air[6:], answer
        assert table[2] >= air[2] and table[4] >= air[4]
    assert grounded.answers != targeted.answers
    with pytest.raises(ValueError, match='plan must be one of'):
        robot_examples([0], image_size=32, plan='words')


def test_vqa_answers_agree_with_the_scene():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sim, _, facts = sample_scene(rng)
        maker = QuestionMaker(facts, rng)
        names = [b.spec.name for b in sim.blocks]
        for phrase, index in maker.referents():
            if phrase.startswith('smallest'):
                sizes = [b.spec.extent for b in sim.blocks]
                assert sizes[index] == min(sizes) and sizes.count(min(sizes)) == 1
            if phrase in names:
                assert names[index] == phrase
        qa = maker.left_right()
        if qa is not None:
            match = re.match(r'is the (\w+ \w+) left or right of the (\w+ \w+)\?', qa[0])
            a, b = (names.index(n) for n in match.groups())
            left = sim.blocks[a].position[1] > sim.blocks[b].position[1]  # +y is the left
            assert qa[1] == ('left' if left else 'right')
    examples = vqa_examples(40, image_size=32, seed=1)
    assert len(examples) == 40 and set(examples.kinds) == {'vqa'}
    points = [a for a, t in zip(examples.answers, examples.tags) if t == 'point']
    assert points and all(0 <= int(v) <= 255 for a in points for v in a.split())


def test_reach_answers_are_the_experts_first_move_towards_that_block():
    # The answer is only useful if it is the action the robot data teaches for the same
    # geometry: the scripted expert picking that block moves exactly so (open gripper, above).
    from rt2_ros.actions import load_action_space
    from rt2_ros.actions.binning import values_to_bins
    from rt2_ros.sim.expert import ALIGN_TOL, ExpertNoise, ScriptedExpert
    from rt2_ros.sim.tasks import Task

    space = load_action_space('rt2')
    rng = np.random.default_rng(5)
    checked = sides = 0
    for _ in range(40):
        sim, _, facts = sample_scene(rng)
        maker = QuestionMaker(facts, rng)
        question, answer = maker.reach()
        phrase = re.match(r'what move puts the gripper over the (.+)\?$', question).group(1)
        index = dict(maker.referents()).get(phrase)
        if index is None or not facts.gripper_open:
            continue  # an ambiguous phrase drawn twice, or the expert would open first
        block = sim.blocks[index]
        tip = np.array(facts.gripper_xyz)
        if np.linalg.norm(block.position[:2] - tip[:2]) <= ALIGN_TOL:
            continue
        task = Task('train', 0, 'pick', phrase, 't0', f'pick up the {phrase}', target=index)
        _, intended = ScriptedExpert(task, ExpertNoise.none()).act(sim)
        assert answer == ' '.join(str(int(b)) for b in values_to_bins(space, intended)[1:4])
        checked += 1
        # And it agrees with the picture: a block right of the gripper in the image is a move
        # to the robot's right (-y, bins below the middle).
        columns = facts.pixels[index][1] - facts.gripper_pixel[1]
        if abs(columns) > 20:
            assert (int(answer.split()[1]) < 127) == (columns > 0), (question, answer)
            sides += 1
    assert checked >= 20 and sides >= 10


def test_recipe_vqa_question_mix_reaches_the_vqa_data(tmp_path, data_dir):
    trainer = new_run(tmp_path, data_dir, 'a', remake=('vqa',), vqa_questions={'reach': 1.0})
    vqa = trainer.sets[1].examples
    assert set(vqa.tags) == {'reach'}
    assert all(p.startswith('Q: what move puts the gripper over the ') for p in vqa.prompts)
    for bad in ({'reach': 0.0}, {'reach': 1.0, 'point': -1.0}):
        with pytest.raises(TrainConfigError, match='vqa_questions: .* positive weight'):
            tiny_config(vqa_questions=bad).validate()
    bad = Trainer(tiny_config(vqa_questions={'reaching': 1.0}), tmp_path / 'b',
                  log=lambda _: None)
    with pytest.raises(TrainingError, match='vqa_questions: unknown question types: reaching'):
        bad.prepare()
    assert not (tmp_path / 'b' / 'data').exists()


def test_vqa_block_range_sets_how_many_blocks_a_scene_has():
    rng = np.random.default_rng(3)
    counts = {len(sample_scene(rng, block_range=(1, 2))[2].specs) for _ in range(30)}
    assert counts == {1, 2}
    examples = vqa_examples(12, image_size=32, seed=2, block_range=(1, 1),
                            weights={'caption': 1.0})
    assert all(',' not in a and ' and ' not in a for a in examples.answers), examples.answers
    with pytest.raises(ValueError, match='block_range'):
        vqa_examples(4, image_size=32, seed=2, block_range=(3, 2))


def test_ordinal_smoothing_prefers_near_misses():
    smoothing = OrdinalSmoothing(list(range(10, 266)), sigma=4.0, weight=0.5)
    logits = torch.full((2, 300), -10.0)
    logits[0, 10 + 130] = 10.0   # label 128, guess 130
    logits[1, 10 + 3] = 10.0     # label 128, guess 3
    labels = torch.tensor([10 + 128, 10 + 128])
    near, far = smoothing.loss(logits, labels)
    assert near < far


def test_grounding_questions_ask_where_the_target_gripper_and_goal_are_on_each_frame():
    from rt2_ros.sim.rollout import expert_episode, POINT_ROWS
    from rt2_ros.sim.tasks import make_episode
    from rt2_ros.training.vqa import point_text
    examples = robot_examples([0, 1], image_size=32, split='train_one_block',
                              families=['move_to'], grounding=True)
    kinds = np.array(examples.kinds)
    actions = np.flatnonzero(kinds == 'robot')
    assert len(examples) == 4 * len(actions)  # target, gripper and goal per move_to frame
    assert len(examples.images) == len(actions)  # the questions share the frame's image row
    demo = expert_episode(make_episode('train_one_block', 0, family='move_to'), render=False,
                          points=True)
    first = [examples.prompts[i] for i in range(4)], [examples.answers[i] for i in range(4)]
    assert first[0][1] == f'Q: where is the target to {demo.instruction}? A:'
    assert first[0][2] == 'Q: where is the gripper? A:'
    assert first[0][3] == f'Q: where is the goal to {demo.instruction}? A:'
    rows = [POINT_ROWS.index(n) for n in ('target', 'fingertips', 'goal')]
    assert first[1][1:] == [point_text(demo.steps[0].points[r], 224) for r in rows]
    assert {examples.tags[i] for i in range(1, 4)} == {'point_target', 'point_gripper',
                                                       'point_goal'}
    picked = robot_examples([2], image_size=32, split='train_one_block', families=['pick'],
                            grounding=True)
    assert 'point_goal' not in picked.tags  # a pick has no place to bring the block


def test_a_batch_mixes_actions_and_grounding_questions_by_the_recipe(tmp_path, data_dir):
    trainer = new_run(tmp_path, data_dir, 'grounded', remake=('robot',), batch_size=8,
                      grounding_fraction=0.25, robot_fraction=0.5)
    kinds = trainer.sets[0].examples.kinds
    for step in range(3):
        picks = trainer.batch_picks(step)
        from_robot = [kinds[i] for s, i in picks if s == 0]
        assert sorted(from_robot) == ['robot'] * 3 + ['vqa'] * 2  # 2 of 8; 3 of the other 6
        assert sum(s == 1 for s, _ in picks) == 3
    plain = new_run(tmp_path, data_dir, 'plain')  # no grounding: the robot stream as before
    assert len(plain.grounding_rows) == 0
    assert plain.batch_picks(1) == [(0, int(i)) for i in plain.samplers[0].take(2, 2)] + [
        (1, int(i)) for i in plain.samplers[1].take(2, 2)]


def test_recipe_validation():
    with pytest.raises(TrainConfigError, match='robot_split'):
        tiny_config(robot_split='seen').validate()
    with pytest.raises(TrainConfigError, match='robot_families'):
        tiny_config(robot_split='train_one_block', robot_families=['place_on']).validate()
    with pytest.raises(TrainConfigError, match='grounding_fraction'):
        tiny_config(grounding_fraction=1.0).validate()
    with pytest.raises(TrainConfigError):
        tiny_config(robot_fraction=0.0).validate()
    with pytest.raises(TrainConfigError):
        tiny_config(dagger=[DaggerRound(at_step=10, episodes=5)]).validate()
    with pytest.raises(TrainConfigError, match='robot_plan'):
        tiny_config(robot_plan='words').validate()
    config = tiny_config(dagger=[DaggerRound(at_step=2, episodes=5)])
    assert [list(r) for r in config.train_seed_ranges()] == [[0, 1, 2], [3, 4, 5, 6, 7]]
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_structured_init_orders_integer_tokens_and_patch_positions(tmp_path):
    trainer = Trainer(tiny_config(), tmp_path, log=lambda _: None)
    ids = trainer.tokenizer.convert_tokens_to_ids([f'{SPACE_MARK}{k}' for k in range(256)])
    table = torch.nn.functional.normalize(
        trainer.model.get_input_embeddings().weight[ids].detach(), dim=1)
    near = (table[:-1] * table[1:]).sum(1)
    far = (table[:-100] * table[100:]).sum(1)
    assert float(near.min()) > float(far.max())  # neighbouring integers start alike
    positions = torch.nn.functional.normalize(
        trainer.model.model.vision_tower.embeddings.position_embedding.weight.detach(), dim=1)
    side = TINY.image_size // TINY.patch_size
    assert float(positions[0] @ positions[1]) > float(positions[0] @ positions[side - 1])
    assert float(positions[0] @ positions[side]) > float(positions[0] @ positions[-1])


def test_committed_recipes_load_and_are_the_bundled_checkpoints_recipes():
    # A recipe typo would surface only after minutes of data generation; a drifted recipe
    # would no longer reproduce the checkpoint it sits beside. config/training holds exactly
    # the recipes of the models the package installs.
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    recipes = sorted(p.stem for p in (root / 'config' / 'training').glob('*.json'))
    models = sorted(p.name for p in (root / 'models').iterdir() if p.is_dir())
    assert recipes == models
    for name in recipes:
        assert TrainConfig.load(root / 'models' / name / 'training.json') == \
            TrainConfig.load(root / 'config' / 'training' / f'{name}.json'), name


def test_device_names_mean_the_same_for_serving_and_training():
    from rt2_ros.torch_device import resolve_device_name

    assert resolve_device_name('auto', cuda_available=False) == 'cpu'
    assert resolve_device_name('', cuda_available=True) == 'cuda'
    assert resolve_device_name(' CUDA:1 ', cuda_available=True) == 'cuda:1'
    assert resolve_device_name('cpu', cuda_available=True) == 'cpu'
    with pytest.raises(ValueError, match='CUDA is not available'):
        resolve_device_name('cuda:0', cuda_available=False)
    for bad in ('gpu', 'cuda:', 'cuda:x', 'mps'):
        with pytest.raises(ValueError, match=r'auto, cpu or cuda\[:N\]'):
            resolve_device_name(bad, cuda_available=True)


def test_training_device_defaults_to_fp32_on_the_cpu_and_refuses_what_is_not_there():
    from rt2_ros.training.device import training_device, TrainDeviceError

    cpu = training_device('cpu')
    assert cpu.device.type == 'cpu' and cpu.autocast_dtype is None
    assert cpu.describe() == {'device': 'cpu', 'device_name': 'CPU', 'precision': 'fp32'}
    assert training_device('cpu', 'bf16').autocast_dtype == torch.bfloat16
    with pytest.raises(TrainDeviceError, match='precision must be auto, fp32, bf16'):
        training_device('cpu', 'fp16')
    with pytest.raises(TrainDeviceError, match='device must be'):
        training_device('gpu')
    if not torch.cuda.is_available():
        assert training_device('auto').device.type == 'cpu'
        with pytest.raises(TrainDeviceError, match='CUDA is not available'):
            training_device('cuda')


def test_bf16_autocast_trains_fp32_weights_and_its_state_resumes_in_fp32(tmp_path, data_dir):
    from rt2_ros.training.device import training_device

    plain = new_run(tmp_path, data_dir, 'fp32')
    plain.run()
    mixed = new_run(tmp_path, data_dir, 'bf16', device=training_device('cpu', 'bf16'))
    mixed.run(until=3)
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    assert all(np.isfinite(h['loss']) for h in mixed.state.history)
    # Another precision (or device) resumes the same recipe's state and finishes it.
    resumed = Trainer(tiny_config(), tmp_path / 'bf16', log=lambda _: None)
    assert resumed.load_state() and resumed.state.step == 3
    resumed.prepare()
    resumed.run()
    assert resumed.state.step == tiny_config().steps
    # autocast really ran: bf16 rounding gives other weights than the fp32 run's
    reference = weights(plain)
    assert any(not torch.equal(value, reference[key])
               for key, value in weights(resumed).items())
    report = json.loads((resumed.export(tmp_path / 'model') / 'training.json').read_text())
    assert report['device'] == 'cpu' and report['precision'] == 'fp32'


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_train_on_a_missing_gpu_fails_before_it_writes_anything(tmp_path):
    from rt2_ros.cli.main import main

    out = tmp_path / 'run'
    assert main(['train', '--out', str(out), '--device', 'cuda', '--no-progress']) == 2
    assert not out.exists()
