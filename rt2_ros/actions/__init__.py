"""Action spaces and codecs (pure Python + numpy; no rclpy)."""
from rt2_ros.actions.codec import (
    ActionCodec, Codec, DecodedAction, make_codec, TextActionCodec, VocabIdCodec,
)
from rt2_ros.actions.errors import (
    ActionDecodeError, ActionEncodeError, ActionSpaceError, StatisticsError,
)
from rt2_ros.actions.normalization import (
    load_dataset_statistics, Unnormalizer, unnormalizer_from_statistics,
)
from rt2_ros.actions.space import ActionSpace, Dimension, load_action_space, preset_names

__all__ = [
    'ActionCodec', 'ActionDecodeError', 'ActionEncodeError', 'ActionSpace', 'ActionSpaceError',
    'Codec', 'DecodedAction', 'Dimension', 'load_action_space', 'load_dataset_statistics',
    'make_codec', 'preset_names', 'StatisticsError', 'TextActionCodec', 'Unnormalizer',
    'unnormalizer_from_statistics', 'VocabIdCodec',
]
