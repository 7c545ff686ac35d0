"""The experiment recipes load, and the one committed checkpoint matches its recipe."""
from experiment_helpers import EXPERIMENTS
from rt2_ros.training.config import TrainConfig


def test_experiment_recipes_load_and_the_staged_checkpoint_is_its_recipes():
    recipes = sorted((EXPERIMENTS / 'recipes').glob('*.json'))
    assert len(recipes) >= 4
    for recipe in recipes:
        TrainConfig.load(recipe)
    model = EXPERIMENTS / 'models' / 'rt2_staged_vla'
    assert TrainConfig.load(model / 'training.json') == \
        TrainConfig.load(EXPERIMENTS / 'recipes' / 'rt2_staged_vla.json')
